"""Argo's documented variables on the real local backend, in Argo's formats: `workflow.labels.*`,
`workflow.annotations.*`, `workflow.parameters.json`, `workflow.mainEntrypoint`, the creation time in
strftime characters, `workflow.duration` in an exit handler, a finished step's `startedAt`, `finishedAt`
and `hostNodeName`, withParam items that keep their JSON text, and `{{workflow.failures}}` naming the pods
that really ran. The values asserted are what the steps printed.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime

from tests.conftest import Cli
from tests.integration.test_workflows_local import by_display, run

VARIABLES = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: variables
  labels: {team: data}
  annotations: {note: "a <b> & c"}
spec:
  entrypoint: main
  onExit: bye
  arguments: {parameters: [{name: n, value: "5"}]}
  templates:
  - name: main
    steps:
    - - name: a
        template: show
        arguments: {parameters: [{name: text, value: "first"}]}
    - - name: b
        template: show
        arguments:
          parameters:
          - name: text
            value: >-
              {{workflow.labels.team}}|{{workflow.labels.json}}|{{workflow.annotations.note}}|{{workflow.parameters.json}}|{{workflow.mainEntrypoint}}|{{workflow.creationTimestamp.Y}}|{{steps.a.startedAt}}|{{steps.a.finishedAt}}|{{steps.a.hostNodeName}}
  - name: show
    inputs: {parameters: [{name: text}]}
    container: {image: busybox, command: [printf, "%s", "{{inputs.parameters.text}}"]}
  - name: bye
    container: {image: busybox, command: [printf, "%s", "{{workflow.duration}} {{workflow.status}}"]}
"""


def _second(stamp: str) -> str:
    return stamp[:19] + "Z"


def test_workflow_and_step_variables_reach_the_steps(cli: Cli) -> None:
    wf = run(cli, VARIABLES)
    nodes = by_display(wf)
    a = nodes["a"]
    year = str(datetime.fromisoformat(wf["metadata"]["creationTimestamp"].replace("Z", "+00:00")).astimezone(UTC).year)
    host = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    assert a["hostNodeName"] == host
    assert nodes["b"]["outputs"]["result"].split("|") == [
        "data", '{"team":"data"}', "a <b> & c", '[{"name":"n","value":"5"}]', "main", year,
        _second(a["startedAt"]), _second(a["finishedAt"]), host]
    seconds, status = nodes["variables.onExit"]["outputs"]["result"].split()
    assert status == "Succeeded" and seconds.count(".") == 1 and len(seconds.split(".")[1]) == 6
    assert 0 < float(seconds) < 60


LOOPS = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: raw-items}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: wp
        template: show
        withParam: '[1.50, 1e3, {"k": 1.0}]'
        arguments: {parameters: [{name: text, value: "{{item}}"}]}
  - name: show
    inputs: {parameters: [{name: text}]}
    container: {image: busybox, command: [printf, "%s", "{{inputs.parameters.text}}"]}
"""


def test_with_param_items_keep_their_json_spelling(cli: Cli) -> None:
    nodes = by_display(run(cli, LOOPS))
    assert {name: n["outputs"]["result"] for name, n in nodes.items() if name.startswith("wp(")} == {
        "wp(0:1.50)": "1.50", "wp(1:1e3)": "1e3", "wp(2:k:1.0)": '{"k":1.0}'}


FAILURES = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: failures}
spec:
  entrypoint: main
  onExit: report
  templates:
  - name: main
    steps:
    - - {name: boom, template: fail, continueOn: {failed: true}}
  - name: fail
    container: {image: busybox, command: [sh, -c, "exit 3"]}
  - name: report
    container: {image: busybox, command: [printf, "%s", "{{workflow.failures}}"]}
"""


def test_workflow_failures_name_the_pod_that_ran(cli: Cli) -> None:
    wf = run(cli, FAILURES)
    nodes = by_display(wf)
    entries = json.loads(nodes["failures.onExit"]["outputs"]["result"])
    pods = {p["metadata"]["name"] for p in cli.json("pods")["items"]}
    assert [(e["displayName"], e["templateName"], e["phase"]) for e in entries] == [("boom", "fail", "Failed")]
    assert entries[0]["podName"] in pods and entries[0]["podName"] != nodes["boom"]["id"]
    assert entries[0]["podName"].startswith("failures-fail-")
