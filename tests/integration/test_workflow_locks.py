"""Argo's synchronization on the real local backend: a workflow-level mutex keeps two workflows from running
at once (the second waits Pending, with Argo's message), and a template-level semaphore whose limit is a
ConfigMap entry bounds how many of a loop's items run at the same time. Overlap is measured from the
timestamps the steps themselves wrote.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import Cli
from tests.integration.test_workflows_local import finish


def intervals(log: Path) -> list[tuple[float, float]]:
    starts: dict[str, float] = {}
    out = []
    for line in log.read_text().splitlines():
        what, who, when = line.split()
        if what == "start":
            starts[who] = float(when)
        else:
            out.append((starts[who], float(when)))
    return out


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda e: (e[0], e[1]))
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def test_a_workflow_mutex_runs_workflows_one_at_a_time(cli: Cli, tmp_path: Path) -> None:
    log = tmp_path / "log"

    def workflow(name: str) -> str:
        return f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: {name}}}
spec:
  entrypoint: work
  synchronization: {{mutex: {{name: the-one}}}}
  templates:
  - name: work
    container:
      image: busybox
      command:
      - sh
      - -c
      - 'echo "start {name} $(date +%s.%N)" >> {log}; sleep 3; echo "end {name} $(date +%s.%N)" >> {log}'
"""
    first = cli.apply(workflow("first")).stdout
    cli.wait("workflow/first", "phase=Running", timeout=30)
    second = cli.apply(workflow("second")).stdout
    deadline = time.monotonic() + 10
    while not (waiting := cli.json("workflow", "second")["status"]).get("phase") and time.monotonic() < deadline:
        time.sleep(0.1)  # its first pass: at once (apply wakes the controller)
    assert waiting["phase"] == "Pending" and waiting["message"] == \
        "Waiting for default/Mutex/the-one lock. Lock status: 0/1", waiting
    assert waiting["synchronization"] == {"mutex": {"waiting": [{"mutex": "default/Mutex/the-one",
                                                                  "holder": "first"}]}}  # who holds it, as Argo
    finish(cli, first, "Succeeded", 60)
    finish(cli, second, "Succeeded", 60)
    spans = intervals(log)
    assert len(spans) == 2 and most_at_once(spans) == 1 and spans[0][1] <= spans[1][0]


def test_a_template_semaphore_bounds_a_loops_items(cli: Cli, tmp_path: Path) -> None:
    log = tmp_path / "log"
    wf = finish(cli, cli.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: limits}}
data: {{workers: "2"}}
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: bounded}}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: item
        template: work
        withSequence: {{count: "5"}}
        arguments: {{parameters: [{{name: n, value: "{{{{item}}}}"}}]}}
  - name: work
    synchronization: {{semaphore: {{configMapKeyRef: {{name: limits, key: workers}}}}}}
    inputs: {{parameters: [{{name: n}}]}}
    container:
      image: busybox
      command:
      - sh
      - -c
      - 'echo "start $0 $(date +%s.%N)" >> {log}; sleep 1; echo "end $0 $(date +%s.%N)" >> {log}'
      - "{{{{inputs.parameters.n}}}}"
""").stdout.splitlines()[1], "Succeeded", 90)
    spans = intervals(log)
    assert len(spans) == 5 and most_at_once(spans) == 2
    assert wf["status"].get("synchronization", {}) == {}  # all released


def test_locks_are_released_however_their_node_or_workflow_ends(cli: Cli, tmp_path: Path) -> None:
    """A node stopped by the workflow's deadline gives its mutex up (the exit handler needing the same mutex
    runs); a workflow that errs while waiting leaves the queue; a semaphore without its ConfigMap errs the node."""
    wf = finish(cli, cli.apply("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: deadline}
spec:
  entrypoint: long
  onExit: cleanup
  activeDeadlineSeconds: 2
  templates:
  - name: long
    synchronization: {mutex: {name: shared}}
    container: {image: busybox, command: [sleep, "30"]}
  - name: cleanup
    synchronization: {mutex: {name: shared}}
    container: {image: busybox, command: [echo, cleaned up]}
""").stdout, "Failed", 60)
    nodes = {n["displayName"]: n for n in wf["status"]["nodes"].values()}
    assert nodes["deadline.onExit"]["phase"] == "Succeeded"
    assert nodes["deadline.onExit"]["outputs"]["result"] == "cleaned up"
    assert wf["status"]["synchronization"] == {}

    errored = finish(cli, cli.apply("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: no-limit}
spec:
  entrypoint: work
  templates:
  - name: work
    synchronization: {semaphore: {configMapKeyRef: {name: missing, key: workers}}}
    container: {image: busybox, command: [echo, never]}
""").stdout, "Error", 30)
    node = errored["status"]["nodes"]["no-limit"]
    assert node["phase"] == "Error" and node["message"] == "semaphore ConfigMap default/missing has no key workers"
