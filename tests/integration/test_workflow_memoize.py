"""Argo's memoization on the real local backend: a step's outputs cached in a ConfigMap under its key, taken by
a later workflow's step with the same key instead of running it (within maxAge), so re-submitting a workflow
whose last step failed reruns only that step.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import Cli
from tests.integration.test_workflows_local import by_display, params, run


def memoized(name: str, key: str, marker: Path, fail_last: bool = False, max_age: str = "1h") -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: {name}}}
spec:
  entrypoint: main
  arguments: {{parameters: [{{name: key, value: "{key}"}}]}}
  templates:
  - name: main
    steps:
    - - {{name: expensive, template: expensive}}
    - - name: use
        template: use
        arguments: {{parameters: [{{name: v, value: "{{{{steps.expensive.outputs.parameters.value}}}}"}}]}}
  - name: expensive
    memoize:
      key: "expensive-{{{{workflow.parameters.key}}}}"
      maxAge: {max_age}
      cache: {{configMap: {{name: expensive-cache}}}}
    outputs: {{parameters: [{{name: value, valueFrom: {{path: /out/value}}}}]}}
    container:
      image: busybox
      command: [sh, -c, 'echo run >> {marker}; date +%s%N > /out/value; echo computed']
  - name: use
    inputs: {{parameters: [{{name: v}}]}}
    container:
      image: busybox
      command: [sh, -c, 'echo "used $0"; exit {1 if fail_last else 0}', "{{{{inputs.parameters.v}}}}"]
"""


def test_a_memoized_step_is_taken_from_its_cache_by_the_next_workflow(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    first = run(cli, memoized("first", "a", marker, fail_last=True), expect="Failed")
    computed = by_display(first)["expensive"]
    assert computed["memoizationStatus"] == {"hit": False, "key": "expensive-a", "cacheName": "expensive-cache"}
    cache = cli.json("configmap", "expensive-cache")
    assert cache["metadata"]["labels"] == {"workflows.argoproj.io/configmap-type": "Cache"}
    entry = json.loads(cache["data"]["expensive-a"])
    assert entry["nodeID"] == computed["id"] and entry["outputs"]["parameters"] == computed["outputs"]["parameters"]

    again = run(cli, memoized("again", "a", marker))  # the re-submission: only the failed step runs
    nodes = by_display(again)
    assert nodes["expensive"]["memoizationStatus"]["hit"] is True
    assert params(nodes["expensive"]) == params(computed) and nodes["expensive"]["outputs"]["result"] == "computed"
    assert nodes["use"]["outputs"]["result"] == f"used {params(computed)['value']}"
    assert marker.read_text().count("run") == 1  # the expensive step ran once for both workflows
    pods = [p["metadata"]["annotations"]["workflows.argoproj.io/node-name"] for p in cli.json("pods")["items"]]
    assert "again[0].expensive" not in pods and "again[1].use" in pods

    other = run(cli, memoized("other", "b", marker))  # another key: computed, and kept beside the first
    assert by_display(other)["expensive"]["memoizationStatus"]["hit"] is False
    assert marker.read_text().count("run") == 2
    assert sorted(cli.json("configmap", "expensive-cache")["data"]) == ["expensive-a", "expensive-b"]


def test_an_entry_older_than_max_age_is_computed_again(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    run(cli, memoized("fresh", "k", marker, max_age="1s"))
    time.sleep(1.5)
    late = run(cli, memoized("late", "k", marker, max_age="1s"))
    assert by_display(late)["expensive"]["memoizationStatus"]["hit"] is False
    assert marker.read_text().count("run") == 2
