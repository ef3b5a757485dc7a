"""Argo Workflow fields beyond the basics, on the real local backend: template parallelism, exported
(global) output parameters, a template's timeout, input artifact modes, the workflow's deadline."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import Cli, wait_for
from tests.integration.test_workflows_local import by_display, run


def test_template_parallelism_bounds_the_pods_running_at_once(cli: Cli, tmp_path: Path) -> None:
    log = tmp_path / "log"
    wf = run(cli, f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: bounded}}
spec:
  entrypoint: main
  templates:
  - name: main
    parallelism: 2
    steps:
    - - name: work
        template: work
        withSequence: {{count: "5"}}
        arguments: {{parameters: [{{name: i, value: "{{{{item}}}}"}}]}}
  - name: work
    inputs: {{parameters: [{{name: i}}]}}
    container:
      image: busybox
      command:
      - sh
      - -c
      - 'echo "start $0 $(date +%s.%N)" >> {log}; sleep 0.4; echo "end $0 $(date +%s.%N)" >> {log}'
      - "{{{{inputs.parameters.i}}}}"
""")
    assert len([n for n in wf["status"]["nodes"].values() if n["type"] == "Pod"]) == 5
    events = sorted((float(t), kind) for kind, _, t in (line.split() for line in log.read_text().splitlines()))
    running, most = 0, 0
    for _, kind in events:
        running += 1 if kind == "start" else -1
        most = max(most, running)
    assert most == 2, events


def test_a_global_output_parameter_reaches_later_steps_and_the_status(cli: Cli) -> None:
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: exported}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: make, template: make}
    - - {name: use, template: use}
  - name: make
    outputs: {parameters: [{name: v, globalName: version, valueFrom: {path: /tmp/v}}]}
    container: {image: busybox, command: [sh, -c, "echo 1.2.3 > /tmp/v"]}
  - name: use
    container: {image: busybox, command: [echo, "using {{workflow.outputs.parameters.version}}"]}
""")
    assert by_display(wf)["use"]["outputs"]["result"] == "using 1.2.3"
    assert wf["status"]["outputs"]["parameters"] == [{"name": "version", "value": "1.2.3"}]


def test_a_template_timeout_fails_its_step_and_an_artifact_mode_is_applied(cli: Cli) -> None:
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: slow}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: tool, template: tool}
    - - {name: hang, template: hang}
  - name: tool
    inputs:
      artifacts: [{name: run, path: /bin-in/run.sh, mode: 0755, raw: {data: "#!/bin/sh\\necho ran from $0\\n"}}]
    container: {image: busybox, command: [/bin-in/run.sh]}
  - name: hang
    timeout: 1s
    container: {image: busybox, command: [sleep, "30"]}
""", expect="Failed")
    nodes = by_display(wf)
    assert nodes["tool"]["outputs"]["result"].startswith("ran from ")
    assert nodes["hang"]["phase"] == "Failed" and "deadline" in nodes["hang"]["message"]


def test_the_workflow_deadline_stops_running_steps(cli: Cli) -> None:
    started = time.time()
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: late}
spec:
  entrypoint: main
  activeDeadlineSeconds: 2
  templates:
  - name: main
    container: {image: busybox, command: [sleep, "60"]}
""", expect="Failed")
    assert time.time() - started < 30
    assert wf["status"]["message"] == "Max duration limit exceeded"
    assert json.dumps(wf["status"]["nodes"]).count("Step exceeded its deadline") == 1
    [pod] = cli.json("pods")["items"]  # stopped by its own deadline (its runner's clock started a little later),
    assert cli.wait(f"pod/{pod['metadata']['name']}", "phase=Failed", timeout=10).returncode == 0  # not deleted
    pod = cli.json("pod", pod["metadata"]["name"])
    assert pod["status"]["reason"] == "DeadlineExceeded"


def chain(marker: Path) -> str:
    """Three chained steps; each appends its name to `marker` (so a step run twice shows), the middle one
    sleeps a little so that the controller can be killed while it runs."""
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: chain}}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {{name: a, template: step, arguments: {{parameters: [{{name: n, value: a}}, {{name: t, value: "0"}}]}}}}
    - - {{name: b, template: step, arguments: {{parameters: [{{name: n, value: b}}, {{name: t, value: "2"}}]}}}}
    - - {{name: c, template: step, arguments: {{parameters: [{{name: n, value: c}}, {{name: t, value: "0"}}]}}}}
  - name: step
    inputs: {{parameters: [{{name: n}}, {{name: t}}]}}
    container:
      image: busybox
      command:
      - sh
      - -c
      - 'sleep "$1"; echo "$0" >> {marker}'
      - "{{{{inputs.parameters.n}}}}"
      - "{{{{inputs.parameters.t}}}}"
"""


def running(cli: Cli, node: str) -> bool:
    return any(p["metadata"]["annotations"].get("workflows.argoproj.io/node-name") == node
               and p["status"].get("phase") == "Running" for p in cli.json("pods")["items"])


def test_a_controller_killed_mid_workflow_runs_no_step_twice(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    cli.apply(chain(marker))
    wait_for(lambda: running(cli, "chain[1].b"))
    cli.kill_controller_and_restart()
    assert cli.wait("workflow/chain", "phase=Succeeded").returncode == 0
    assert marker.read_text().split() == ["a", "b", "c"]
    assert len(cli.json("pods")["items"]) == 3


def test_deleting_a_running_workflow_stops_its_steps_and_removes_its_pods(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    cli.apply(chain(marker))
    wait_for(lambda: running(cli, "chain[1].b"))
    cli("delete", "workflow", "chain")
    assert cli("get", "workflows", "-o", "json", check=False).stdout.count('"chain"') == 0
    assert cli.json("pods")["items"] == []
    time.sleep(2.5)
    assert marker.read_text().split() == ["a"]  # b was stopped in its sleep, c never started


def test_a_child_left_holding_stdout_does_not_hold_the_step(cli: Cli) -> None:
    started = time.time()
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: daemonish}
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: busybox, command: [sh, -c, "sleep 30 & echo done"]}
""")
    assert by_display(wf)["daemonish"]["outputs"]["result"] == "done"
    assert time.time() - started < 20


def test_exit_hooks_take_arguments_from_the_step_they_follow_and_the_workflow(cli: Cli) -> None:
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: hooked}
spec:
  entrypoint: main
  hooks:
    exit:
      template: say
      arguments: {parameters: [{name: text, value: "workflow {{workflow.status}}"}]}
  templates:
  - name: main
    dag:
      tasks:
      - name: a
        template: make
        hooks:
          exit:
            template: say
            arguments: {parameters: [{name: text, value: "a made {{tasks.a.outputs.result}} ({{tasks.a.status}})"}]}
  - name: make
    container: {image: busybox, command: [sh, -c, "echo 42"]}
  - name: say
    inputs: {parameters: [{name: text}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.text}}"]}
""")
    nodes = {n["name"]: n for n in wf["status"]["nodes"].values()}
    assert nodes["hooked.a.onExit"]["outputs"]["result"] == "a made 42 (Succeeded)"
    assert nodes["hooked.onExit"]["outputs"]["result"] == "workflow Succeeded"
