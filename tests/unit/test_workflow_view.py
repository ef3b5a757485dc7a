"""`get wf` and `describe workflow` as Argo's CLI prints them: the pure rendering, over statuses the controller's
walker makes (nodes linked as Argo links them) through a fake Pods port."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from podline.api.loader import load_text
from podline.cli import workflow_view as view
from podline.controller.argo_nodes import Walker
from podline.runtime.files import parse_rfc3339, rfc3339
from podline.store import Obj

T0 = "2026-01-02T03:04:00.000000Z"
NOW = parse_rfc3339(T0) + 200


def at(seconds: float) -> str:
    """T0 plus some seconds, as the controller stamps nodes."""
    return rfc3339(parse_rfc3339(T0) + seconds)


DEMO = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: demo, namespace: default, labels: {team: ml}}
spec:
  entrypoint: main
  onExit: report
  arguments: {parameters: [{name: greeting, value: hi there}]}
  templates:
  - name: main
    steps:
    - - {name: prep, template: echo}
    - - {name: fan, template: echo, withItems: [a, b]}
      - {name: flaky, template: flaky}
    - - {name: inner, template: diamond}
  - name: diamond
    parallelism: 1
    dag:
      tasks:
      - {name: a, template: write}
      - {name: b, template: fail, depends: a}
      - {name: c, template: write, depends: b}
      - {name: d, template: echo, depends: b.Failed, withItems: [x, y]}
  - {name: echo, container: {image: busybox}}
  - {name: write, container: {image: busybox}}
  - {name: fail, container: {image: busybox}}
  - {name: flaky, retryStrategy: {limit: 2, backoff: {duration: 2s}}, container: {image: busybox}}
  - {name: report, container: {image: busybox}}
"""


def exited(code: int) -> dict[str, Any]:
    """A finished pod's status as the pod runner reports it."""
    return {"phase": "Succeeded" if code == 0 else "Failed", "outputs": {"exitCode": str(code)},
            "containerStatuses": [{"name": "main", "state": {"terminated": {
                "exitCode": code, "reason": "Completed" if code == 0 else "Error"}}}]}


OK, RUNNING = exited(0), {"phase": "Running"}


class FakePods:
    """The walker's `Pods` port: a pod per started node, named `demo-<template>-<n>` in start order."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # node id -> pod name, as the controller keeps internal["pods"]
        self.status: dict[str, dict[str, Any]] = {}  # node name -> pod status

    def observe(self, node: dict[str, Any]) -> dict[str, Any] | None:
        return self.status.get(node["name"], {"phase": "Pending"}) if node["id"] in self.names else None

    def start(self, node: dict[str, Any], template: dict[str, Any], artifacts: list[dict[str, Any]]) -> bool:
        self.names[node["id"]] = f"demo-{template['name']}-{len(self.names) + 1}"
        return True


def walked(manifest: str, script: list[tuple[float, dict[str, dict[str, Any]]]]
           ) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, str]]:
    """The Argo-linked nodes the controller's walker makes of `manifest`, passing once at each scripted time
    (seconds after T0) after giving the named pods (by node name) their status: (manifest, nodes, pod names)."""
    wf = load_text(manifest, "test")[0].obj.dump()
    nodes: dict[str, dict[str, Any]] = {}
    pods = FakePods()
    for seconds, statuses in script:
        pods.status.update(statuses)
        Walker(wf, nodes, pods, parse_rfc3339(T0) + seconds, rfc3339).run(
            lambda root: {"workflow.status": root["phase"], "workflow.failures": "[]"})
    return wf, json.loads(json.dumps(nodes)), pods.names


# main: [prep] → [fan over two items, flaky (a retry: failed once, then passed after a 2s backoff)] →
# [inner DAG, one pod at a time: a passes, b fails, c (depends on b) is omitted, d (on b.Failed) loops]; then
# the onExit handler.
DEMO_SCRIPT: list[tuple[float, dict[str, dict[str, Any]]]] = [
    (0, {}), (5, {"demo[0].prep": OK}), (6.5, {"demo[1].fan(1:b)": OK}), (7, {"demo[1].flaky(0)": exited(1)}),
    (9, {}), (17, {"demo[1].fan(0:a)": OK}), (80, {"demo[1].flaky(1)": OK}), (90, {"demo[2].inner.a": OK}),
    (95, {"demo[2].inner.b": exited(3)}), (96, {"demo[2].inner.d(0:x)": RUNNING})]
DEMO_DONE = [*DEMO_SCRIPT, (150, {"demo[2].inner.d(0:x)": OK}), (170, {"demo[2].inner.d(1:y)": OK}),
             (171, {"demo.onExit": RUNNING})]


def demo_manifest() -> dict[str, Any]:
    """DEMO as stored, plus a parameter left without a value (the loader would not take one; a stored
    workflow may still carry it)."""
    manifest = load_text(DEMO, "test")[0].obj.dump()
    manifest["spec"]["arguments"]["parameters"].append({"name": "unset"})
    return manifest


def workflow(status: dict[str, Any], pods: dict[str, str] | None = None, deleted: float | None = None,
             manifest: dict[str, Any] | None = None) -> Obj:
    manifest = manifest or demo_manifest()
    return Obj(uid="uid-1", kind="Workflow", namespace="default", name=manifest["metadata"]["name"],
               manifest_json=json.dumps(manifest), generation=1, status=status, internal={"pods": pods or {}},
               owner_uid=None, settled=False, created_at=parse_rfc3339(T0) - 10, deleted_at=deleted)


def from_walker(manifest: str, script: list[tuple[float, dict[str, dict[str, Any]]]], **status: Any) -> Obj:
    wf, nodes, pods = walked(manifest, script)
    return workflow({"phase": nodes[wf["metadata"]["name"]]["phase"], "startedAt": T0, **status, "nodes": nodes},
                    pods, manifest=demo_manifest() if manifest == DEMO else wf)


def running() -> Obj:
    return from_walker(DEMO, DEMO_SCRIPT, progress="5/9")


def view_id(name: str) -> str:
    """A node's id, as the walker names it."""
    return Walker(load_text(DEMO, "test")[0].obj.dump(), {}, FakePods(), 0, rfc3339).node_id(name)


def tree(obj: Obj) -> list[str]:
    return view.table_lines(view.TREE_COLUMNS, view.tree_rows(obj, NOW))


def test_the_walker_links_nodes_as_argo_does_not_as_they_are_drawn() -> None:
    """What the renderer is up against: chained step groups, DAG tasks under the tasks they depend on."""
    nodes = running().status["nodes"]
    by_name = {n["name"]: n for n in nodes.values()}

    def kids(name: str) -> list[str]:
        return [nodes[c]["name"] for c in by_name[name].get("children", [])]

    assert kids("demo") == ["demo[0]"] and kids("demo[0].prep") == ["demo[1]"]
    assert kids("demo[1].flaky(1)") == ["demo[2]"] and kids("demo[1].fan(0:a)") == ["demo[2]"]
    assert kids("demo[2].inner") == ["demo[2].inner.a"] and kids("demo[2].inner.a") == ["demo[2].inner.b"]
    assert kids("demo[2].inner.b") == ["demo[2].inner.c", "demo[2].inner.d"]


def test_the_node_tree_draws_step_groups_as_forks_and_retries_dags_and_loops_under_their_parents() -> None:
    assert tree(running()) == [
        "STEP               TEMPLATE  PODNAME       DURATION  MESSAGE",
        " ● demo            main",
        " ├───✔ prep        echo      demo-echo-1   5s",
        " ├─┬─✔ fan(0:a)    echo      demo-echo-2   12s",
        " │ ├─✔ fan(1:b)    echo      demo-echo-3   1s",
        " │ └─✔ flaky       flaky",
        " │   ├─✖ flaky(0)  flaky     demo-flaky-4  2s        Error (exit code 1)",
        " │   └─✔ flaky(1)  flaky     demo-flaky-5  1m",
        " └───● inner       diamond",
        "     ├─✔ a         write     demo-write-6  10s",
        "     ├─✖ b         fail      demo-fail-7   5s        Error (exit code 3)",
        "     ├─○ c         write                             omitted: depends condition not met",
        "     ├─● d(0:x)    echo      demo-echo-8   1m",
        "     └─◷ d(1:y)    echo                    1m",
    ]


def test_the_on_exit_handler_is_a_second_tree() -> None:
    """Once main is done (Failed: the omitted c inherits b's failure, as Argo has it; the message names b, which
    failed), its onExit runs."""
    assert tree(from_walker(DEMO, DEMO_DONE)) == [
        "STEP               TEMPLATE  PODNAME         DURATION  MESSAGE",
        f" ✖ demo            main                                child '{view_id('demo[2].inner')}' failed",
        " ├───✔ prep        echo      demo-echo-1     5s",
        " ├─┬─✔ fan(0:a)    echo      demo-echo-2     12s",
        " │ ├─✔ fan(1:b)    echo      demo-echo-3     1s",
        " │ └─✔ flaky       flaky",
        " │   ├─✖ flaky(0)  flaky     demo-flaky-4    2s        Error (exit code 1)",
        " │   └─✔ flaky(1)  flaky     demo-flaky-5    1m",
        " └───✖ inner       diamond                             task 'demo[2].inner.b' failed",
        "     ├─✔ a         write     demo-write-6    10s",
        "     ├─✖ b         fail      demo-fail-7     5s        Error (exit code 3)",
        "     ├─○ c         write                               omitted: depends condition not met",
        "     ├─✔ d(0:x)    echo      demo-echo-8     55s",
        "     └─✔ d(1:y)    echo      demo-echo-9     1m",
        "",
        " ● demo.onExit     report    demo-report-10  30s",
    ]


def test_rows_are_the_five_columns_of_argo_get() -> None:
    rows = {r[0].lstrip(" │├└┬─"): r for r in view.tree_rows(running(), NOW) if r[0]}
    assert rows["✖ b"] == ["     ├─✖ b", "fail", "demo-fail-7", "5s", "Error (exit code 3)"]
    assert rows["● inner"][2:] == ["", "", ""]  # a DAG has no pod and, as in Argo, no duration
    assert rows["◷ d(1:y)"][2] == ""  # not started yet (the DAG runs one pod at a time): no pod name
    assert rows["○ c"] == ["     ├─○ c", "write", "", "", "omitted: depends condition not met"]


def test_a_retry_with_one_attempt_shows_only_the_attempt() -> None:
    manifest = DEMO.split("  templates:")[0].replace("entrypoint: main", "entrypoint: flaky") + \
        "  templates:\n  - {name: flaky, retryStrategy: {limit: 2}, container: {image: busybox}}\n" \
        "  - {name: report, container: {image: busybox}}\n"
    rows = view.tree_rows(from_walker(manifest, [(0, {}), (1, {"demo(0)": RUNNING})]), NOW)
    assert rows == [[" ● demo(0)", "flaky", "demo-flaky-1", "3m", ""]]


STEPS = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: demo}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: x, template: t}
      - {name: y, template: t, continueOn: {failed: true}}
      - {name: z, template: t, when: "a == b"}
    - - {name: w, template: t}
    - - {name: v, template: t, withItems: [1, 2]}
  - {name: t, container: {image: busybox}}
"""


def test_step_groups_chained_through_their_steps_are_drawn_side_by_side() -> None:
    obj = from_walker(STEPS, [(0, {}), (5, {"demo[0].x": OK, "demo[0].y": exited(2)}), (9, {"demo[1].w": OK}),
                              (12, {"demo[2].v(0:1)": OK, "demo[2].v(1:2)": OK})])
    assert [r[0] for r in view.tree_rows(obj, NOW)] == [
        " ✔ demo", " ├─┬─✔ x", " │ ├─✖ y", " │ └─○ z", " ├───✔ w", " └─┬─✔ v(0:1)", "   └─✔ v(1:2)"]


HOOKS = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: demo}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: x, template: t, onExit: hook}
      - {name: r, template: retried, onExit: hook}
    - - {name: inner, template: graph}
  - name: graph
    dag:
      tasks:
      - {name: p, template: t, onExit: hook}
      - {name: q, template: t, depends: p}
  - {name: t, container: {image: busybox}}
  - {name: retried, retryStrategy: {limit: 1}, container: {image: busybox}}
  - {name: hook, container: {image: busybox}}
"""


def test_a_step_or_task_exit_hook_is_drawn_under_its_step_or_task() -> None:
    obj = from_walker(HOOKS, [(0, {}), (5, {"demo[0].x": OK, "demo[0].r(0)": OK}),
                              (6, {"demo[0].x.onExit": OK, "demo[0].r.onExit": OK}), (7, {}),
                              (8, {"demo[1].inner.p": OK}), (9, {"demo[1].inner.p.onExit": OK}),
                              (10, {"demo[1].inner.q": OK}), (11, {})])
    assert obj.status["phase"] == "Succeeded"
    assert [r[0] for r in view.tree_rows(obj, NOW)] == [
        " ✔ demo", " ├─┬─✔ x", " │ │ └─✔ x.onExit", " │ └─✔ r", " │   ├─✔ r(0)", " │   └─✔ r.onExit",
        " └───✔ inner", "     ├─✔ p", "     │ └─✔ p.onExit", "     └─✔ q"]


def test_no_tree_before_the_workflow_starts() -> None:
    pending = workflow({})
    assert view.tree_rows(pending, NOW) == []
    lines = view.describe_lines(pending, NOW)
    assert lines[:3] == ["Name:                demo", "Namespace:           default", "Status:              Pending"]
    assert not any(line.startswith(("Started:", "Finished:", "Duration:", "STEP")) for line in lines)


def test_the_header_reads_like_argo_get() -> None:
    failed = running()
    failed.status.update(phase="Failed", message="child 'b' failed", finishedAt=at(75))
    lines = view.header_lines(failed, NOW)
    assert [line[:21] for line in lines] == [
        "Name:                ", "Namespace:           ", "Status:              ", "Message:             ",
        "Labels:              ", "Created:             ", "Started:             ", "Finished:            ",
        "Duration:            ", "Progress:            ", "Parameters:", "  greeting:          "]
    assert lines[2:5] == ["Status:              Failed", "Message:             child 'b' failed",
                          "Labels:              team=ml"]
    stamp = r"\w{3} \w{3} \d\d \d\d:\d\d:\d\d [+-]\d{4}"
    assert re.fullmatch(rf"Created:             {stamp} \(3 minutes ago\)", lines[5])
    assert re.fullmatch(rf"Started:             {stamp} \(3 minutes ago\)", lines[6])
    assert re.fullmatch(rf"Finished:            {stamp} \(2 minutes ago\)", lines[7])
    assert lines[8:] == ["Duration:            1 minute 15 seconds", "Progress:            5/9", "Parameters:",
                         "  greeting:          hi there"]  # a parameter without a value is left out, as Argo does


def test_describe_puts_the_tree_after_a_blank_line() -> None:
    lines = view.describe_lines(running(), NOW)
    blank = lines.index("")
    assert lines[:blank] == view.header_lines(running(), NOW) and lines[blank - 1] == "  greeting:          hi there"
    assert lines[blank + 1].split() == view.TREE_COLUMNS
    assert lines[blank + 2].split() == ["●", "demo", "main"]


def test_get_rows_are_argo_list_columns() -> None:
    assert view.list_headers(False) == ["NAME", "STATUS", "AGE", "DURATION", "PROGRESS"]
    assert view.list_headers(True) == ["NAME", "STATUS", "AGE", "DURATION", "PROGRESS", "MESSAGE"]
    assert view.list_row(running(), False, NOW) == ["demo", "Running", "3m", "3m", "5/9"]
    done = running()
    done.status.update(phase="Failed", message="child 'b' failed", finishedAt=at(75))
    assert view.list_row(done, True, NOW) == ["demo", "Failed", "3m", "1m", "5/9", "child 'b' failed"]
    assert view.list_row(workflow({}), True, NOW) == ["demo", "Pending", "3m", "", "", ""]
    assert view.list_row(workflow({"phase": "Running"}, deleted=NOW), False, NOW)[1] == "Terminating"


@pytest.mark.parametrize(("seconds", "short", "long"), [
    (0.4, "0s", "0 seconds"), (1.5, "1s", "1 second"), (59.9, "59s", "59 seconds"), (60, "1m", "1 minute 0 seconds"),
    (125, "2m", "2 minutes 5 seconds"), (3725, "1h", "1 hour 2 minutes"), (7200, "2h", "2 hours 0 minutes"),
    (90000, "1d", "1 day 1 hours"), (-3, "0s", "0 seconds"),
])
def test_durations_as_argo_humanizes_them(seconds: float, short: str, long: str) -> None:
    assert (view.short_duration(seconds), view.long_duration(seconds)) == (short, long)
