"""`get wf` and `describe workflow` as Argo's CLI prints them: the pure rendering over hand-written statuses."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from podline.cli import workflow_view as view
from podline.runtime.files import parse_rfc3339
from podline.store import Obj

T0 = "2026-01-02T03:04:00.000000Z"
NOW = parse_rfc3339(T0) + 200


def at(seconds: float) -> str:
    """T0 plus some seconds, as the controller stamps nodes."""
    whole, frac = divmod(seconds, 1)
    base = parse_rfc3339(T0) + whole
    return datetime.fromtimestamp(base, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(frac * 1e6):06d}Z"


def node(nid: str, display: str, kind: str, phase: str, start: float, end: float | None = None,
         template: str = "", children: tuple[str, ...] = (), message: str = "", boundary: str = "demo") -> dict:
    out: dict[str, Any] = {"id": nid, "name": f"demo.{display}", "displayName": display, "type": kind,
                           "phase": phase, "startedAt": at(start)}
    if end is not None:
        out["finishedAt"] = at(end)
    if template:
        out["templateName"] = template
    if children:
        out["children"] = list(children)
    if message:
        out["message"] = message
    if boundary:
        out["boundaryID"] = boundary
    return out


def demo_nodes() -> dict[str, dict]:
    """main: [prep] → [fan over two items, flaky (a retry: failed once, then passed)] → [inner DAG]; and
    an onExit handler still running. The DAG: a passes, b fails with a message, c is omitted, d loops."""
    nodes = [
        node("demo", "demo", "Steps", "Running", 0, template="main", children=("g0", "g1", "g2"), boundary=""),
        node("g0", "[0]", "StepGroup", "Succeeded", 0, 5, children=("prep",)),
        node("prep", "prep", "Pod", "Succeeded", 0, 5, "echo"),
        node("g1", "[1]", "StepGroup", "Succeeded", 5, 80, children=("fan0", "fan1", "flaky")),
        node("fan0", "fan(0:a)", "Pod", "Succeeded", 5, 17, "echo"),
        node("fan1", "fan(1:b)", "Pod", "Succeeded", 5, 6.5, "echo"),
        node("flaky", "flaky", "Retry", "Succeeded", 5, 80, "flaky", children=("flaky0", "flaky1")),
        node("flaky0", "flaky(0)", "Pod", "Failed", 5, 7, "flaky", message="Error (exit code 1)"),
        node("flaky1", "flaky(1)", "Pod", "Succeeded", 9, 80, "flaky"),
        node("g2", "[2]", "StepGroup", "Running", 80, children=("inner",)),
        node("inner", "inner", "DAG", "Running", 80, template="diamond", children=("a", "b", "c", "d")),
        node("a", "a", "Pod", "Succeeded", 80, 90, "write", boundary="inner"),
        node("b", "b", "Pod", "Failed", 90, 95, "fail", message="Error (exit code 3)", boundary="inner"),
        node("c", "c", "Skipped", "Omitted", 95, 95, "write", message="omitted: depends condition not met",
             boundary="inner"),
        node("d", "d", "TaskGroup", "Running", 95, children=("d0", "d1"), boundary="inner"),
        node("d0", "d(0:x)", "Pod", "Running", 95, template="echo", boundary="inner"),
        node("d1", "d(1:y)", "Pod", "Pending", 95, template="echo", boundary="inner"),
        node("exit", "demo.onExit", "Pod", "Running", 190, template="report", boundary=""),
    ]
    return {n["id"]: n for n in nodes}


PODS = {"prep": "demo-prep-1", "fan0": "demo-echo-2", "fan1": "demo-echo-3", "flaky0": "demo-flaky-4",
        "flaky1": "demo-flaky-5", "a": "demo-write-6", "b": "demo-fail-7", "d0": "demo-echo-8", "exit": "demo-report-9"}

MANIFEST = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "demo", "namespace": "default", "labels": {"team": "ml"}},
            "spec": {"entrypoint": "main", "arguments": {"parameters": [{"name": "greeting", "value": "hi there"},
                                                                        {"name": "unset"}]}, "templates": []}}


def workflow(status: dict[str, Any], pods: dict[str, str] | None = None, deleted: float | None = None) -> Obj:
    return Obj(uid="uid-1", kind="Workflow", namespace="default", name="demo", manifest_json=json.dumps(MANIFEST),
               generation=1, status=status, internal={"pods": pods or {}}, owner_uid=None, settled=False,
               created_at=parse_rfc3339(T0) - 10, deleted_at=deleted)


def running() -> Obj:
    return workflow({"phase": "Running", "startedAt": T0, "progress": "5/9", "nodes": demo_nodes()}, PODS)


def test_the_node_tree_draws_step_groups_as_forks_and_retries_dags_loops_and_on_exit_under_their_parents() -> None:
    rows = view.tree_rows(running(), NOW)
    assert view.table_lines(view.TREE_COLUMNS, rows) == [
        "STEP               TEMPLATE  PODNAME        DURATION  MESSAGE",
        " ● demo            main",
        " ├───✔ prep        echo      demo-prep-1    5s",
        " ├─┬─✔ fan(0:a)    echo      demo-echo-2    12s",
        " │ ├─✔ fan(1:b)    echo      demo-echo-3    1s",
        " │ └─✔ flaky       flaky",
        " │   ├─✖ flaky(0)  flaky     demo-flaky-4   2s        Error (exit code 1)",
        " │   └─✔ flaky(1)  flaky     demo-flaky-5   1m",
        " └───● inner       diamond",
        "     ├─✔ a         write     demo-write-6   10s",
        "     ├─✖ b         fail      demo-fail-7    5s        Error (exit code 3)",
        "     ├─○ c         write                              omitted: depends condition not met",
        "     ├─● d(0:x)    echo      demo-echo-8    1m",
        "     └─◷ d(1:y)    echo                     1m",
        "",
        " ● demo.onExit     report    demo-report-9  10s",
    ]


def test_rows_are_the_five_columns_of_argo_get() -> None:
    rows = {r[0].lstrip(" │├└┬─"): r for r in view.tree_rows(running(), NOW) if r[0]}
    assert rows["✖ b"] == ["     ├─✖ b", "fail", "demo-fail-7", "5s", "Error (exit code 3)"]
    assert rows["● inner"][2:] == ["", "", ""]  # a DAG has no pod and, as in Argo, no duration
    assert rows["◷ d(1:y)"][2] == ""  # not started yet: no pod in internal.pods
    assert rows["○ c"] == ["     ├─○ c", "write", "", "", "omitted: depends condition not met"]


def test_a_retry_with_one_attempt_shows_only_the_attempt() -> None:
    nodes = {"demo": node("demo", "demo", "Retry", "Running", 0, template="flaky", children=("t0",), boundary=""),
             "t0": node("t0", "demo(0)", "Pod", "Running", 0, template="flaky", boundary="")}
    rows = view.tree_rows(workflow({"phase": "Running", "startedAt": T0, "nodes": nodes}, {"t0": "demo-flaky-1"}),
                          NOW)
    assert rows == [[" ● demo(0)", "flaky", "demo-flaky-1", "3m", ""]]


def test_a_step_group_with_several_steps_then_one_more() -> None:
    nodes = {"demo": node("demo", "demo", "Steps", "Succeeded", 0, 9, "main", ("g0", "g1"), boundary=""),
             "g0": node("g0", "[0]", "StepGroup", "Succeeded", 0, 5, children=("x", "y", "z")),
             "x": node("x", "x", "Pod", "Succeeded", 0, 5, "t"), "y": node("y", "y", "Pod", "Error", 0, 5, "t"),
             "z": node("z", "z", "Skipped", "Skipped", 0, 0, "t", message="when 'a == b' evaluated false"),
             "g1": node("g1", "[1]", "StepGroup", "Succeeded", 5, 9, children=("w",)),
             "w": node("w", "w", "Pod", "Succeeded", 5, 9, "t")}
    steps = [r[0] for r in view.tree_rows(workflow({"phase": "Succeeded", "nodes": nodes}), NOW)]
    assert steps == [" ✔ demo", " ├─┬─✔ x", " │ ├─⚠ y", " │ └─○ z", " └───✔ w"]


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
