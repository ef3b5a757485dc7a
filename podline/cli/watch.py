"""logs and wait: the verbs that follow running work."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from podline.api.names import INDEX_KEY
from podline.api.sidecars import sidecar_names
from podline.cli.common import State, fail, namespace_option, pass_state, split_ref
from podline.runtime.files import attempt_starts, log_file
from podline.store import Obj

POLL = 0.05
TERMINAL = ("Succeeded", "Failed", "Error")  # Error: a Workflow's phase when podline could not run a step
NODE_ANNOTATION = "workflows.argoproj.io/node-name"


def _pods_for(state: State, ref: str, shard: int | None) -> list[Obj]:
    """`NAME`, `pod/NAME` or `job/NAME` (all its pods, or the one with --shard I) → pods."""
    if "/" in ref:
        kind, name = split_ref(ref)
    else:
        kind, name = "Pod", ref
        if state.store.get("Pod", state.namespace, name) is None and state.store.get("Job", state.namespace, name):
            kind = "Job"
    index = lambda p: int(p.manifest["metadata"].get("annotations", {}).get(INDEX_KEY, -1))  # noqa: E731
    if kind == "Pod":
        pod = state.find("Pod", name)
        if shard is not None and shard != max(index(pod), 0):  # a pod of its own is shard 0 of one
            fail(f"pod {name} is not shard {shard}" + (f" (it is index {index(pod)})" if index(pod) >= 0 else ""))
        return [pod]
    if kind != "Job":
        fail(f"logs are available for pods and jobs, not {kind}", 2)
    job = state.find("Job", name)
    spec = job.manifest["spec"]
    completions = spec.get("completions") if spec.get("completionMode") == "Indexed" else None
    if shard is not None and (completions is None or not 0 <= shard < completions):
        known = f"its indexes: 0..{completions - 1}" if completions else "it is not Indexed"
        fail(f"job {name} has no shard {shard} ({known})")
    pods = [p for p in state.store.list(kind="Pod", owner_uid=job.uid)]
    if shard is not None:
        pods = [p for p in pods if index(p) == shard]
    if not pods:
        finished = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                       for c in job.status.get("conditions", []))
        fail(f"job {name} has no pods{'' if shard is None else f' for shard {shard}'}"
             + (" left (it has finished)" if finished else " yet"))
    return sorted(pods, key=lambda p: (index(p), p.created_at))


def _container_for(pod: Obj, container: str | None) -> str:
    spec = pod.manifest["spec"]
    names = [c["name"] for c in spec.get("initContainers", []) + spec["containers"]]
    if container is None:
        if len(spec["containers"]) > 1 or spec.get("initContainers"):
            click.echo(f'Defaulted container "{spec["containers"][0]["name"]}" out of: {", ".join(names)}',
                       err=True)
        return spec["containers"][0]["name"]
    if container not in names:
        fail(f"container {container} is not valid for pod {pod.name}: choose one of {', '.join(names)}")
    return container


def _container_over(pod: Obj, name: str) -> bool:
    """Whether container NAME has terminated and will not run again: `logs -f -c NAME` then returns, as
    kubectl's does, instead of following until the whole pod ends (an init container's output would
    otherwise hang until the long-running main container exits). Whether it runs again follows the
    runner's rule: an init container reruns only after a failure, and not under restartPolicy Never; a
    main container never reruns under Never, under OnFailure only after a failure, always under Always; a
    sidecar always (the pod's end stops the following anyway)."""
    spec = pod.manifest["spec"]
    is_init = any(c["name"] == name for c in spec.get("initContainers", []))
    statuses = pod.status.get("initContainerStatuses" if is_init else "containerStatuses", [])
    status = next((c for c in statuses if c.get("name") == name), {})
    term = status.get("state", {}).get("terminated")
    if term is None:
        return False
    if name in sidecar_names(spec):
        return False  # a sidecar restarts whatever it exited with, until its pod is over
    policy = spec.get("restartPolicy", "Always")
    if policy == "Never":
        return True
    if is_init or policy == "OnFailure":
        return term.get("exitCode") == 0
    return False


def _stream(path: Path, offset: int) -> int:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        return offset
    if chunk:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    return offset + len(chunk)


def _pipeline_logs(state: State, name: str, step: str | None, shard: int | None, follow: bool) -> None:
    """A pipeline step's output on one shard (default 0), appended across attempts."""
    pipeline = state.find("Pipeline", name)
    steps = [s["name"] for s in pipeline.manifest["spec"]["steps"]]
    if step is None:
        step = steps[-1]
        click.echo(f'Defaulted step "{step}" out of: {", ".join(steps)}', err=True)
    elif step not in steps:
        fail(f"step {step} is not valid for pipeline {name}: choose one of {', '.join(steps)}")
    shards = int(pipeline.manifest["spec"].get("shards", 1))
    if shard is not None and not 0 <= shard < shards:  # as for a job: exit 1, not an empty success
        known = "0" if shards == 1 else f"0..{shards - 1}"
        fail(f"pipeline {name} has no shard {shard} (its shards: {known})")
    offset = 0
    while True:
        current = state.store.get_uid(pipeline.uid)
        home = (current or pipeline).internal.get("home")
        path = Path(home) / "shards" / str(shard or 0) / "logs" / f"{step}.log" if home else None
        if path is not None:
            offset = _stream(path, offset)
        if not follow or current is None or current.status.get("phase") in TERMINAL:
            if path is not None:
                _stream(path, offset)
            return
        time.sleep(POLL)


def _workflow_logs(state: State, name: str, step: str | None, follow: bool) -> None:
    """Every step pod's output, each line prefixed with its pod name (as `argo logs` prints); -c keeps the
    steps whose node display name or template is STEP. With -f, until the workflow is over."""
    workflow = state.find("Workflow", name)
    if step is not None and not _names_a_step(workflow, step) and state.store.get(
            "Pod", workflow.namespace, step) is None:
        fail(f'workflow {name} has no step or template "{step}"')
    offsets: dict[str, int] = {}
    while True:
        current = state.store.get_uid(workflow.uid)
        nodes = {n.get("name"): n for n in ((current or workflow).status.get("nodes") or {}).values()}
        pods = sorted(state.store.list(kind="Pod", owner_uid=workflow.uid), key=lambda p: p.created_at)
        for pod in pods:
            if step is not None and not _step_matches(step, pod, nodes):
                continue
            run = pod.internal.get("run")
            if not run:
                continue
            path = log_file(Path(run["dir"]), "main")
            try:
                with open(path, "rb") as handle:
                    handle.seek(offsets.get(pod.name, 0))
                    chunk = handle.read()
            except FileNotFoundError:
                continue
            complete = chunk[:chunk.rfind(b"\n") + 1] if follow and pod.status.get("phase") not in TERMINAL else chunk
            offsets[pod.name] = offsets.get(pod.name, 0) + len(complete)
            for line in complete.decode(errors="replace").splitlines():
                click.echo(f"{pod.name}: {line}")
        if not follow or current is None or current.status.get("phase") in TERMINAL:
            return
        time.sleep(POLL)


def _names_a_step(workflow: Obj, step: str) -> bool:
    """Whether -c STEP can ever match: a template, step or task the workflow declares, or one of its nodes."""
    templates = list(workflow.manifest.get("spec", {}).get("templates") or [])
    templates += list((workflow.status.get("storedTemplates") or {}).values())
    names = {t.get("name") for t in templates}
    for template in templates:
        names |= {s.get("name") for group in template.get("steps") or [] for s in group or []}
        names |= {t.get("name") for t in (template.get("dag") or {}).get("tasks") or []}
    for node in (workflow.status.get("nodes") or {}).values():
        names |= {node.get("name"), node.get("displayName"), node.get("templateName"), node.get("id")}
    return step in names or any(isinstance(n, str) and n.startswith(step + "(") for n in names)


def _step_matches(step: str, pod: Obj, nodes: dict[str, dict[str, Any]]) -> bool:
    """-c STEP names a workflow pod by its node's display name (`fan`, or one item's `fan(0:a.txt)`), its
    template's name, its node's full name or the pod's name."""
    node_name = pod.manifest["metadata"].get("annotations", {}).get(NODE_ANNOTATION, "")
    node = nodes.get(node_name, {})
    display = node.get("displayName", "")
    return step in (display, node.get("templateName"), node_name, pod.name) or display.startswith(step + "(")


@click.command()
@namespace_option
@click.argument("name")
@click.option("-c", "--container", default=None, help="Container (or pipeline step) name.")
@click.option("-f", "--follow", is_flag=True,
              help="Stream new output until the container ends for good (or the pod finishes).")
@click.option("--shard", type=int, default=None, help="For a job: the pod of this completion index.")
@click.option("-p", "--previous", is_flag=True, help="The container's run before the current one.")
@click.option("--tail", type=click.IntRange(min=-1), default=-1, help="Only the last N lines (-1: all).")
@pass_state
def logs(state: State, name: str, container: str | None, follow: bool, shard: int | None, previous: bool,
         tail: int) -> None:
    """Print a container's (or a pipeline step's) output: its current run (a restarted container's earlier
    runs: --previous)."""
    kind, bare = split_ref(name) if "/" in name else ("Pod", name)
    if kind == "Pipeline" or ("/" not in name and state.store.get("Pod", state.namespace, name) is None
                              and state.store.get("Pipeline", state.namespace, name) is not None):
        kind = "Pipeline"
    if kind in ("Workflow", "Pipeline") and (previous or tail >= 0):
        fail(f"--previous and --tail are for a pod's containers, not a {kind.lower()}'s steps", 2)
    if kind == "Workflow":
        _workflow_logs(state, bare, container, follow)
        return
    if kind == "Pipeline":
        _pipeline_logs(state, bare, container, shard, follow)
        return
    pods = _pods_for(state, name, shard)
    for pod in pods:
        chosen = _container_for(pod, container)
        run = pod.internal.get("run")
        path = log_file(Path(run["dir"]), chosen) if run else None
        if previous:
            _print_previous(path, pod.name, chosen, tail)
            continue
        if not follow and (path is None or not path.exists()):  # no run of it has begun
            if len(pods) > 1:
                continue  # a Job's pods: those that ran
            why = pod.status.get("reason") if pod.status.get("phase") in TERMINAL else None
            fail(f'container "{chosen}" in pod "{pod.name}" ' + (f"never started ({why})" if why else
                                                                "is waiting to start"))  # kubectl's exit 1
        starts = attempt_starts(path) if path is not None else []
        offset = starts[-1] if starts else 0  # the current run's output
        if tail >= 0 and path is not None:
            offset = _print_tail(path, offset, tail)
        while True:
            current = state.store.get_uid(pod.uid)
            run = (current or pod).internal.get("run")
            if run:
                path = log_file(Path(run["dir"]), chosen)
                offset = _stream(path, offset)
            done = current is None or current.status.get("phase") in TERMINAL or _container_over(current, chosen)
            if not follow or done:
                if run:
                    _stream(log_file(Path(run["dir"]), chosen), offset)
                break
            time.sleep(POLL)


def _print_previous(path: Path | None, pod: str, container: str, tail: int) -> None:
    starts = attempt_starts(path) if path is not None else []
    if path is None or len(starts) < 2:
        fail(f'previous terminated container "{container}" in pod "{pod}" not found')
    with open(path, "rb") as handle:
        handle.seek(starts[-2])
        chunk = handle.read(starts[-1] - starts[-2])
    sys.stdout.buffer.write(_last_lines(chunk, tail))
    sys.stdout.buffer.flush()


def _print_tail(path: Path, offset: int, tail: int) -> int:
    """The last `tail` lines written since `offset`; where following goes on from."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        return offset
    sys.stdout.buffer.write(_last_lines(chunk, tail))
    sys.stdout.buffer.flush()
    return offset + len(chunk)


def _last_lines(chunk: bytes, tail: int) -> bytes:
    if tail < 0:
        return chunk
    if tail == 0:
        return b""
    lines = chunk.splitlines(keepends=True)
    return b"".join(lines[-tail:])


# What `wait --for` can name, per kind: the phases and conditions the controller sets (Job phases are
# podline's shorthand for its conditions, as kubectl's habit; a Job is Running while it has active pods).
WAIT_PHASES: dict[str, tuple[str, ...]] = {
    "Pod": ("Pending", "Running", "Succeeded", "Failed"),
    "Job": ("Running", "Succeeded", "Complete", "Failed"),
    "Pipeline": ("Pending", "Running", "Succeeded", "Failed"),
    "Workflow": ("Pending", "Running", "Succeeded", "Failed", "Error"),
}
WAIT_CONDITIONS: dict[str, tuple[str, ...]] = {
    "Pod": ("PodScheduled", "Initialized", "ContainersReady", "Ready", "DisruptionTarget"),
    "Job": ("Complete", "Failed", "Suspended"),
    "Pipeline": (),
    "Workflow": ("PodRunning", "Completed"),
}


def _accepted(kind: str) -> str:
    choices = [f"phase={p}" for p in WAIT_PHASES[kind]] + [f"condition={c}" for c in WAIT_CONDITIONS[kind]]
    return ", ".join(choices)


def parse_for(kind: str, condition: str | None) -> tuple[str, str, str]:
    """`phase=P` or `condition=C[=True|False]` → (what, canonical name, wanted condition status); a pod's
    default is condition=Ready. Exit 2 when KIND has no such phase or condition (it could never be reached)."""
    if kind not in WAIT_PHASES:
        fail(f"a {kind.lower()} has no phase or condition to wait for (kinds that have: "
             f"{', '.join(k.lower() for k in WAIT_PHASES)})", 2)
    if condition is None:
        if kind != "Pod":
            fail(f"--for is required for a {kind.lower()} (accepted: {_accepted(kind)})", 2)
        condition = "condition=Ready"
    what, sep, value = condition.partition("=")
    if what not in ("phase", "condition") or not sep or not value:
        fail(f"--for={condition}: expected phase=VALUE or condition=VALUE", 2)
    value, _, status = value.partition("=") if what == "condition" else (value, "", "")
    names = WAIT_PHASES[kind] if what == "phase" else WAIT_CONDITIONS[kind]
    canonical = next((n for n in names if n.lower() == value.lower()), None)
    if canonical is None or status.lower() not in ("", "true", "false"):
        fail(f"--for={condition}: not a {what} of a {kind.lower()} (accepted: {_accepted(kind)})", 2)
    return what, canonical, status.capitalize() or "True"


def _condition(obj: Obj, kind: str, status: str = "True") -> bool:
    return any(c.get("type", "").lower() == kind.lower() and c.get("status") == status
               for c in obj.status.get("conditions", []))


def _reached(obj: Obj, what: str, value: str, status: str = "True") -> tuple[bool, bool]:
    """(reached, still reachable) for --for=phase=X / --for=condition=Y[=STATUS]."""
    if obj.kind == "Job":
        if what == "phase":
            value = {"succeeded": "Complete", "failed": "Failed", "complete": "Complete"}.get(value.lower(), value)
            if value.lower() == "running":
                return obj.status.get("active", 0) > 0, not (_condition(obj, "Complete") or _condition(obj, "Failed"))
        finished = _condition(obj, "Complete") or _condition(obj, "Failed")
        return _condition(obj, value, status), not finished
    if what == "phase":
        phase = obj.status.get("phase", "Pending")
        return phase.lower() == value.lower(), phase not in TERMINAL
    return _condition(obj, value, status), obj.status.get("phase") not in TERMINAL


def _where_it_ended(obj: Obj) -> str:
    """What an object that can no longer reach the awaited state is: its phase, or a Job's final condition."""
    if "phase" in obj.status:
        return f"phase {obj.status['phase']}"
    final = next((c for c in reversed(obj.status.get("conditions", []))
                  if c["type"] in ("Complete", "Failed") and c.get("status") == "True"), None)
    return f"{final['type']}: {final.get('reason', '')}" if final else "phase unknown"


def _timeout_seconds(text: str) -> float:
    """kubectl's --timeout is a Go duration (30s, 5m, 1h); a bare number is seconds, as podline took it before."""
    from podline.api.durations import DURATION, duration_seconds

    if not DURATION.fullmatch(text):
        fail(f"--timeout {text!r}: expected a duration such as 30s, 5m, 1h30m (a bare number is seconds)", 2)
    return float(duration_seconds(text))


def _wait_targets(refs: tuple[str, ...]) -> list[tuple[str, str]]:
    """`pod/a job/b` or `pod a b`, as kubectl wait takes them."""
    if any("/" in ref for ref in refs):
        return [split_ref(ref) for ref in refs]
    if len(refs) < 2:
        fail(f"expected KIND/NAME… or KIND NAME…, got {' '.join(refs)!r}", 2)
    return [split_ref(refs[0], name) for name in refs[1:]]


def _wait_one(state: State, kind: str, name: str, wanted: tuple[str, str, str] | None, deadline: float) -> None:
    """Until KIND/NAME reaches `wanted` (None: until it is gone), or fail (exit 1)."""
    ref = f"{kind.lower()}/{name}"
    condition = "delete" if wanted is None else f"{wanted[0]}={wanted[1]}" + (
        f"={wanted[2]}" if wanted[2] != "True" else "")
    while True:
        if wanted is None:
            if state.store.get(kind, state.namespace_of(kind), name) is None:
                break
        else:
            obj = state.find(kind, name)
            reached, reachable = _reached(obj, *wanted)
            if reached:
                break
            if not reachable:
                fail(f"{ref} can no longer reach {condition} ({_where_it_ended(obj)})", 1)
        if time.time() >= deadline:
            fail(f"timed out waiting for {condition} on {ref}", 1)
        time.sleep(POLL)
    click.echo(f"{ref} condition met")  # kubectl's words, for phases too


@click.command()
@namespace_option
@click.argument("refs", nargs=-1, required=True)
@click.option("--for", "condition", default=None,
              help="phase=P, condition=C[=True|False] or delete (a pod's default: condition=Ready); one the kind "
                   "does not have exits 2, listing those it has.")
@click.option("--timeout", default="30s", help="A duration: 30s, 5m, 1h (a bare number is seconds; default 30s).")
@pass_state
def wait(state: State, refs: tuple[str, ...], condition: str | None, timeout: str) -> None:
    """Wait until each KIND/NAME (or KIND NAME…) reaches a phase or condition, or is gone (--for=delete); exit 1
    on timeout or when one no longer can."""
    deadline = time.time() + _timeout_seconds(timeout)
    targets = _wait_targets(refs)
    wanted = {kind: None if condition == "delete" else parse_for(kind, condition) for kind, _ in targets}
    for kind, name in targets:
        _wait_one(state, kind, name, wanted[kind], deadline)
