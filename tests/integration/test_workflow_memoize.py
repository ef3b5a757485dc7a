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


def test_caches_that_are_no_caches_or_hold_broken_entries_are_handled_as_argo_does(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    cli.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: expensive-cache}
data: {expensive-a: '{"outputs": {"parameters": [{"name": "value"}]}, "creationTimestamp": "2026-01-01T00:00:00Z"}'}
""")  # the user's own ConfigMap of that name, without Argo's cache label: never read or written
    wf = run(cli, memoized("users", "a", marker), expect="Failed")
    node = by_display(wf)["expensive"]
    assert node["phase"] == "Error" and "is not a memoization cache" in node["message"]
    assert "run" not in (marker.read_text() if marker.exists() else "")
    assert json.loads(cli.json("configmap", "expensive-cache")["data"]["expensive-a"])["outputs"] == {
        "parameters": [{"name": "value"}]}
    cli("delete", "configmap", "expensive-cache")
    cli.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: expensive-cache, labels: {workflows.argoproj.io/configmap-type: Cache}}
data: {expensive-a: '{"outputs": {"parameters": [{"name": "value"}]}, "creationTimestamp": "2026-01-01T00:00:00Z"}'}
""")  # a cache whose entry was edited into a broken shape: a miss, and the step writes a good entry
    fixed = run(cli, memoized("broken", "a", marker))
    assert by_display(fixed)["expensive"]["memoizationStatus"]["hit"] is False
    entry = json.loads(cli.json("configmap", "expensive-cache")["data"]["expensive-a"])
    assert entry["outputs"]["parameters"][0]["value"] == params(by_display(fixed)["expensive"])["value"]


def test_a_hit_under_a_retry_strategy_is_one_node_as_in_argo(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    run(cli, memoized("warm", "r", marker))
    retried = memoized("retried", "r", marker).replace("  entrypoint: main\n", "  entrypoint: main\n"
                                                       "  retryStrategy: {limit: 2}\n")
    nodes = by_display(run(cli, retried))
    step = nodes["expensive"]
    assert step["type"] == "Pod" and step["memoizationStatus"]["hit"] is True
    assert not [n for n in nodes if n.startswith("expensive(")]  # no attempt nodes
    assert marker.read_text().count("run") == 1
