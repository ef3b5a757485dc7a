"""logs: the verb that follows running work's output (wait: cli/wait_cmd.py)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from podline.api.conditions import final_condition
from podline.api.names import INDEX_KEY
from podline.api.sidecars import sidecar_names
from podline.cli.common import State, fail, namespace_option, pass_state, split_ref
from podline.runtime.files import attempt_starts, log_file
from podline.store import Obj

POLL = 0.05
TAIL_BLOCK = 1 << 16
TERMINAL = ("Succeeded", "Failed", "Error")  # Error: a Workflow's phase when podline could not run a step
NODE_ANNOTATION = "workflows.argoproj.io/node-name"


def _pods_for(state: State, ref: str, shard: int | None) -> list[Obj]:
    """`NAME`, `pod/NAME` or `job/NAME` (one of its pods, of index I with --shard I) → the pod, in a list."""
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
        fail(f"job {name} has no pods{'' if shard is None else f' for shard {shard}'}"
             + (" left (it has finished)" if final_condition(job.status) else " yet"))
    if len(pods) == 1:
        return pods
    # As kubectl logs job/NAME: one pod, said which (a running one first, else the newest; --shard I: of index I)
    chosen = max(pods, key=lambda p: (p.status.get("phase") == "Running", p.created_at))
    click.echo(f"Found {len(pods)} pods, using pod/{chosen.name}", err=True)
    return [chosen]


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


def _stream(path: Path, offset: int, end: int | None = None) -> int:
    """Print what the log holds from `offset` (up to `end`); where it stopped."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read() if end is None else handle.read(max(0, end - offset))
    except FileNotFoundError:
        return offset
    if chunk:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    return offset + len(chunk)


def _pipeline_logs(state: State, name: str, step: str | None, shard: int | None, follow: bool, tail: int) -> None:
    """A pipeline step's output on one shard (default 0), appended across attempts (the last `tail` lines)."""
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
    if shard is None and shards > 1:  # as kubectl says which container it picked
        click.echo(f"Defaulted shard 0 out of 0..{shards - 1} (--shard I picks another)", err=True)
    offset = 0
    path = _step_log(pipeline, step, shard)
    if not follow and (path is None or not path.exists()):  # as for a pod's container: exit 1, not silence
        fail(f'step "{step}" of pipeline {name} (shard {shard or 0}) has not run')
    if tail >= 0 and path is not None and path.exists():
        offset = _tail_start(path, 0, tail)
    marked: set[int] = set()
    while True:
        current = state.store.get_uid(pipeline.uid)
        path = _step_log(current or pipeline, step, shard)
        if path is not None:
            offset = _stream_attempts(path, offset, step, marked)
        over = current is None or current.status.get("phase") in TERMINAL or _step_succeeded(current, step, shard)
        if not follow or over:  # -f -c STEP returns once STEP is done, as for a pod's container
            if path is not None:
                _stream_attempts(path, offset, step, marked)
            if current is not None and (path is None or not path.exists()):  # over, STEP never ran: exit 1
                fail(f'step "{step}" of pipeline {name} (shard {shard or 0}) has not run')
            return
        time.sleep(POLL)


def _stream_attempts(path: Path, offset: int, step: str, marked: set[int]) -> int:
    """As _stream, with a line on stderr where each later attempt of the step begins (stdout stays the step's
    own output, to pipe on); `marked`: the attempts whose line was printed (or lies before what is shown)."""
    for number, start in enumerate(attempt_starts(path)[1:], start=2):
        if number in marked:
            continue
        if start >= offset:
            offset = _stream(path, offset, start)
            if offset < start:  # the attempt has not begun in what is there to read
                return offset
            click.echo(f"--- step {step}: attempt {number} ---", err=True)
        marked.add(number)
    return _stream(path, offset)


def _step_log(pipeline: Obj, step: str, shard: int | None) -> Path | None:
    """Where a step's log is on one shard (None: the pipeline has not started)."""
    home = pipeline.internal.get("home")
    return log_file(Path(home) / "shards" / str(shard or 0), step) if home else None


def _step_succeeded(pipeline: Obj, step: str, shard: int | None) -> bool:
    return any(s.get("name") == step and s.get("shard", 0) == (shard or 0) and s.get("phase") == "Succeeded"
               for s in pipeline.status.get("steps") or [])


def _workflow_logs(state: State, name: str, step: str | None, follow: bool) -> None:
    """Every step pod's output, each line prefixed with its pod name (as `argo logs` prints); -c keeps the
    steps whose node display name or template is STEP (one that has not run: exit 1, as a pod's container).
    With -f, until the workflow is over, or with -c until STEP's nodes are (its retries and loop items too)."""
    workflow = state.find("Workflow", name)
    if step is not None and not _names_a_step(workflow, step) and state.store.get(
            "Pod", workflow.namespace, step) is None:
        fail(f'workflow {name} has no step or template "{step}"')
    offsets: dict[str, int] = {}
    once = step is not None and _declared_once(workflow, step)  # else more of its nodes may come later
    while True:
        current = state.store.get_uid(workflow.uid)
        nodes = {n.get("name"): n for n in ((current or workflow).status.get("nodes") or {}).values()}
        pods = sorted(state.store.list(kind="Pod", owner_uid=workflow.uid), key=lambda p: p.created_at)
        ran = False
        for pod in pods:
            if step is not None and not _step_matches(step, pod, nodes):
                continue
            run = pod.internal.get("run")
            if not run:
                continue
            ran = True
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
        if step is not None and not ran and not follow:
            fail(f'step "{step}" of workflow {name} has not run')
        over = current is None or current.status.get("phase") in TERMINAL
        if not follow or over or (step is not None and once and _nodes_over(step, nodes)):
            return
        time.sleep(POLL)


NODE_DONE = ("Succeeded", "Failed", "Error", "Skipped", "Omitted")


def _nodes_over(step: str, nodes: dict[str, dict[str, Any]]) -> bool:
    """Whether the nodes -c STEP names have all ended (a Retry or loop node ends after its last attempt)."""
    named = [n for n in nodes.values() if step in (n.get("displayName"), n.get("templateName"), n.get("name"))
             or n.get("displayName", "").startswith(step + "(")]
    return bool(named) and all(n.get("phase") in NODE_DONE for n in named)


def _calls(template: dict[str, Any]) -> list[dict[str, Any]]:
    """A steps or DAG template's steps or tasks (none for another kind)."""
    return [*(c for group in template.get("steps") or [] for c in group or []),
            *((template.get("dag") or {}).get("tasks") or [])]


def _declared_once(workflow: Obj, step: str) -> bool:
    """Whether -c STEP's nodes can only ever be one step's or task's: declared once, in a template that runs
    once, and no template of that name runs elsewhere. Then its nodes being over means no more will come (a
    template called twice, or a name used twice, may run again later)."""
    spec = workflow.manifest.get("spec", {})
    templates = list(spec.get("templates") or [])
    runs = [c.get("template") for t in templates for c in _calls(t)] + [spec.get("entrypoint"), spec.get("onExit")]
    holders = [t["name"] for t in templates for c in _calls(t) if c.get("name") == step]
    named_template = any(t.get("name") == step for t in templates)
    return len(holders) == 1 and runs.count(holders[0]) == 1 and (not named_template or runs.count(step) == 1)


def _names_a_step(workflow: Obj, step: str) -> bool:
    """Whether -c STEP can ever match: a template, step or task the workflow declares, or one of its nodes."""
    templates = list(workflow.manifest.get("spec", {}).get("templates") or [])
    templates += list((workflow.status.get("storedTemplates") or {}).values())
    names = {t.get("name") for t in templates} | {c.get("name") for t in templates for c in _calls(t)}
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
@click.option("--shard", type=int, default=None,
              help="For a job: the pod of this completion index; for a pipeline: the shard (default 0).")
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
    if kind in ("Workflow", "Pipeline") and previous:  # a step's attempts are one appended log
        fail(f"--previous is for a pod's containers; a {kind.lower()} step's log holds all its attempts", 2)
    if kind == "Workflow" and tail >= 0:
        fail("--tail is for a pod's containers and pipeline steps; a workflow's logs are its steps' pods' logs", 2)
    if kind == "Workflow":
        _workflow_logs(state, bare, container, follow)
        return
    if kind == "Pipeline":
        _pipeline_logs(state, bare, container, shard, follow, tail)
        return
    pods = _pods_for(state, name, shard)
    for pod in pods:
        chosen = _container_for(pod, container)
        run = pod.internal.get("run")
        path = log_file(Path(run["dir"]), chosen) if run else None
        if previous:
            _print_previous(path, pod, chosen, tail)
            continue
        if not follow and (path is None or not path.exists()):  # no run of it has begun
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


def _print_previous(path: Path | None, pod: Obj, container: str, tail: int) -> None:
    """The run before the current one; while the container waits in its back-off, the run that just ended (as
    the kubelet serves `-p` from lastState: there is no current run)."""
    starts = attempt_starts(path) if path is not None else []
    statuses = pod.status.get("initContainerStatuses", []) + pod.status.get("containerStatuses", [])
    waiting = any(c.get("name") == container and "waiting" in c.get("state", {}) for c in statuses)
    if path is None or len(starts) < (1 if waiting else 2):
        fail(f'previous terminated container "{container}" in pod "{pod.name}" not found')
    begin, end = (starts[-1], None) if waiting else (starts[-2], starts[-1])
    _print_range(path, begin, end, tail)


def _print_tail(path: Path, offset: int, tail: int) -> int:
    """The last `tail` lines written since `offset`; where following goes on from."""
    try:
        return _print_range(path, offset, None, tail)
    except FileNotFoundError:
        return offset


def _print_range(path: Path, begin: int, end: int | None, tail: int) -> int:
    """Print bytes begin..end (None: the end of the file) of the log, only their last `tail` lines when tail >= 0;
    return where the range ends."""
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END) if end is None else end
        begin = _tail_start(path, begin, tail, end) if tail >= 0 else begin
        handle.seek(begin)
        chunk = handle.read(end - begin)
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
    return end


def _tail_start(path: Path, begin: int, tail: int, end: int | None = None) -> int:
    """Where the last `tail` lines of bytes begin..end (None: the end of the file) begin, read backwards in
    blocks (a run's log may be gigabytes)."""
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END) if end is None else end
        if tail == 0:
            return end
        chunk, at = b"", end
        while at > begin and chunk.count(b"\n") <= tail:
            step = min(TAIL_BLOCK, at - begin)
            at -= step
            handle.seek(at)
            chunk = handle.read(step) + chunk
        lines = chunk.splitlines(keepends=True)
        return end - sum(len(line) for line in lines[-tail:])
