"""Render pods and Indexed Jobs as sbatch scripts (pure functions, pinned by golden files).

One pod is one allocation (HPK's model); an Indexed Job is one job array, each array task one completion
index. The script is two-level: `#SBATCH` header lines (resources, placement, validated annotation flags,
the podline tag in `--comment` used to adopt jobs after a controller crash), then a body that only
`exec`s the podline pod runner on the attempt's run directory. Every value that reaches the body is
shell-quoted; manifest strings never reach it at all (they travel in plan.json).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from functools import partial
from typing import Any

from podline.api.pilot import PilotSize
from podline.api.quantity import cpu_millis, memory_bytes, parse_quantity
from podline.api.sidecars import is_sidecar
from podline.api.slurmflags import FORWARDED_SIGNALS, flags_from_annotations
from podline.plan.ranges import compress
from podline.plan.totals import pod_total
from podline.plan.workflow_pod import WORKFLOW_LABEL

COMMENT_PREFIX = "podline:"


@dataclass(frozen=True)
class Placement:
    """Where and how a context submits: from `config.yaml` (`podline config set-context`)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_limit: str | None = None
    python: str = "python3"


def container_totals(spec: dict[str, Any]) -> dict[str, int]:
    """Per-pod cores (rounded up), memory (bytes) and GPUs, limits before requests (`plan.totals.pod_total`)."""
    def one(container: dict[str, Any]) -> dict[str, int]:
        res = container.get("resources", {})
        want = {**res.get("requests", {}), **{k: v for k, v in res.get("limits", {}).items()}}
        return {"cpu": cpu_millis(want.get("cpu", 0)), "memory": memory_bytes(want.get("memory", 0)),
                "gpu": int(parse_quantity(want.get("nvidia.com/gpu", 0)))}
    return pod_total([(is_sidecar(c), one(c)) for c in spec.get("initContainers", [])],
                     [one(c) for c in spec["containers"]])


def _minutes(seconds: int) -> str:
    return str(max(1, math.ceil(seconds / 60)))


def sbatch_options(name: str, namespace: str, uid: str, pod_spec: dict[str, Any], annotations: dict[str, str],
                   placement: Placement, output: str, workdir: str, array: str | None = None,
                   deadline: int | None = None) -> list[str]:
    """The `#SBATCH` options in a stable order; an annotation flag overrides the option it names."""
    totals = container_totals(pod_spec)
    options = [f"--job-name=podline.{namespace}.{name}", f"--comment={COMMENT_PREFIX}{uid}",
               f"--output={output}", "--open-mode=append", f"--chdir={workdir}", "--nodes=1", "--ntasks=1",
               f"--cpus-per-task={max(1, math.ceil(totals['cpu'] / 1000))}"]
    if totals["memory"]:
        options.append(f"--mem={math.ceil(totals['memory'] / 2**20)}M")
    if totals["gpu"]:
        options.append(f"--gres=gpu:{totals['gpu']}")
    seconds = deadline or pod_spec.get("activeDeadlineSeconds")
    if seconds:
        options.append(f"--time={_minutes(int(seconds))}")
    elif placement.time_limit:
        options.append(f"--time={placement.time_limit}")
    for key, value in (("partition", placement.partition), ("account", placement.account),
                       ("qos", placement.qos)):
        if value:
            options.append(f"--{key}={value}")
    if array is not None:
        options.append(f"--array={array}")
    # A job lost with its node ends (NODE_FAIL) and the controller retries it at once, counted against
    # backoffLimit; Slurm's requeue would hold it ~2 minutes and then rerun an attempt the runner refuses to
    # run twice (`--requeue` is refused in annotations).
    options.append("--no-requeue")
    return merge_options(options, flags_from_annotations(annotations))


# sbatch refuses these together ("--mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive"; so are
# --cpus-per-task and --cpus-per-gpu): an option of a group replaces whichever of the group is already there.
EXCLUSIVE = {"--mem-per-cpu": "--mem", "--mem-per-gpu": "--mem", "--cpus-per-gpu": "--cpus-per-task"}


def _slot(option: str) -> str:
    name = option.split("=", 1)[0]
    return EXCLUSIVE.get(name, name)


def merge_options(base: list[str], extra: list[str]) -> list[str]:
    """`extra` replaces options of the same name, or of the same exclusive group, in `base` (in place), or is
    appended: an annotation's `--mem-per-cpu` is the pod's memory request, instead of podline's `--mem`."""
    merged = {_slot(option): option for option in base}
    for option in extra:
        merged[_slot(option)] = option
    return list(merged.values())


def directive(option: str) -> str:
    """One `#SBATCH` option as sbatch reads it: whitespace ends it, `#` starts a comment and `'`/`"` quote,
    except inside double quotes, where a backslash escapes the next character (the shared directory's path
    may hold any of these)."""
    if any(c.isspace() or c in "#\"'\\" for c in option):
        return '"' + option.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return option


RUNNER_COMMENT = ["# Everything below runs inside the allocation: the podline pod runner executes the containers",
                  "# (init containers in order, then the rest) and writes status.json and logs/ in the run directory."]


def _script(header: list[str], what: str, workdir: str, runner_args: list[str], placement: Placement,
            module: str = "podline.runtime.pod", comment: list[str] = RUNNER_COMMENT) -> str:
    lines = ["#!/bin/bash"] + [f"#SBATCH {directive(option)}" for option in header] + [
        f"# podline: {what}", *comment,
        "set -eu",
        *_signal_trap(header),
        f"export SLURM_SUBMIT_DIR={shlex.quote(workdir)}",  # sbatch may have run elsewhere (a warm one runs in /)
        "exec " + " ".join(shlex.quote(a) for a in [placement.python, "-m", module, *runner_args]),
    ]
    return "\n".join(lines) + "\n"


def _signal_trap(header: list[str]) -> list[str]:
    """With `--signal=B:SIG`, Slurm may signal the batch shell as soon as the job starts (a time limit shorter
    than the warning time): ignored until the runner, which this shell becomes, installs its forwarding
    handler, so an early one is lost rather than fatal to the pod. Only a forwarded signal: ignoring one of
    the stopping signals would delay podline's own stop, and the runner only handles these."""
    names = {option.removeprefix("--signal=B:").split("@", 1)[0] for option in header
             if option.startswith("--signal=B:")}
    return [f"trap '' {name}" for name in sorted(names) if name in FORWARDED_SIGNALS]


def render_pod(manifest: dict[str, Any], uid: str, rundir: str, placement: Placement, of: str = "") -> str:
    """One pod's batch job; `of`: what it is a pod of, for the script's comment (one of a Job's, say)."""
    meta = manifest["metadata"]
    header = sbatch_options(meta["name"], meta.get("namespace", "default"), uid, manifest["spec"],
                            meta.get("annotations", {}), placement, f"{rundir}/slurm-%j.out", rundir)
    return _script(header, f"{of}pod {meta.get('namespace', 'default')}/{meta['name']} (uid {uid})", rundir,
                   [rundir], placement)


PILOT_OWN = ("--cpus-per-task", "--mem", "--gres", "--nodes", "--ntasks", "--job-name", "--comment", "--output",
             "--chdir", "--no-requeue")


def render_pilot(manifest: dict[str, Any], tag: str, pilotdir: str, size: PilotSize, placement: Placement) -> str:
    """The pilot job of the workflow whose step pod `manifest` is: one allocation of `size`, running the pilot
    agent (podline.runtime.pilot), which takes the workflow's pods from `pilotdir/queue` and runs each with the
    pod runner. Slurm flags come from the step pod's annotations (only steps with the workflow's podMetadata
    flags go into a pilot), except those that would make the allocation other than the agent believes it is
    (its size, and its time when the annotation gives one)."""
    meta = manifest["metadata"]
    requests = {"cpu": f"{size.cpu}m", "memory": str(size.memory), "nvidia.com/gpu": str(size.gpu)}
    workflow = meta.get("labels", {}).get(WORKFLOW_LABEL, meta["name"])
    spec = {"containers": [{"resources": {"requests": requests}}]}
    options = partial(sbatch_options, workflow, meta.get("namespace", "default"), tag, spec)
    own = options({}, placement, f"{pilotdir}/slurm-%j.out", pilotdir, deadline=size.time or None)
    header = merge_options(options(meta.get("annotations", {}), placement, f"{pilotdir}/slurm-%j.out", pilotdir),
                           [o for o in own if o.split("=", 1)[0] in PILOT_OWN + (("--time",) if size.time else ())])
    header[0] += ".pilot"
    what = f"pilot allocation for workflow {meta.get('namespace', 'default')}/{workflow} ({tag})"
    return _script(header, what, pilotdir, [pilotdir], placement, module="podline.runtime.pilot",
                   comment=["# Everything below runs inside the allocation: the podline pilot agent runs the "
                            "workflow's step pods", "# as the controller queues them in the pilot directory, "
                            "each with the pod runner, as many at once as fit."])


def render_indexed_job(manifest: dict[str, Any], array_id: str, base: str, placement: Placement,
                       indexes: list[int] | None = None, pipeline: bool = False) -> str:
    """One array for the given indexes (default: all); task I runs in `base/I` with JOB_COMPLETION_INDEX=I.
    A Pipeline's shards are rendered as its Indexed Job (`pipeline_array_job`) and named as shards."""
    meta, spec = manifest["metadata"], manifest["spec"]
    template = spec["template"]
    annotations = {**meta.get("annotations", {}), **template.get("metadata", {}).get("annotations", {})}
    wanted = list(range(spec["completions"])) if indexes is None else indexes
    if not wanted:  # `--array=` is no array: a Job of 0 completions completes with no job at all
        raise ValueError(f"{meta['name']}: no indexes to render (completions 0 runs no pod)")
    header = sbatch_options(meta["name"], meta.get("namespace", "default"), array_id, template["spec"], annotations,
                            placement, f"{base}/slurm-%A_%a.out", base,
                            array=array_spec(wanted, spec.get("parallelism", 1)))
    what, unit = ("pipeline", "shards") if pipeline else ("indexed job", "indexes")
    return _script(header, f"{what} {meta.get('namespace', 'default')}/{meta['name']} (array {array_id}), "
                   f"{len(wanted)} {unit}", base, ["--array-base", base], placement)


def array_spec(indexes: list[int], parallelism: int) -> str:
    """Compact `--array` value: ranges of consecutive indexes, throttled with %P below the task count."""
    count = len(set(indexes))
    return compress(indexes) + (f"%{parallelism}" if 0 < parallelism < count else "")
