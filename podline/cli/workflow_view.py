"""How a Workflow reads on the command line: `get wf` as `argo list` and `describe workflow` as `argo get`.

Pure functions from a stored Workflow (its manifest, Argo-shaped status and `internal["pods"]`, which maps a
Pod node's id to its pod's name) and a clock to table rows and text lines, so the layout can be tested
without a store. The node tree is drawn as Argo's CLI draws it: not along the nodes' `children` (which link
them in execution order: each step group under the steps of the one before, a DAG task under the tasks it
depends on) but by boundary, so a steps node's groups and a DAG's tasks are siblings under it. A step group
is not a row of its own (its steps hang off one `┬─` fork), a Retry node with a single attempt shows only the
attempt, the items of a DAG task's loop sit directly under the DAG, and an onExit handler is a second tree
after a blank line. Unlike Argo, an Omitted DAG task is shown (`○`), so a skipped branch is visible, and a
step's or task's own exit hook (`<node>.onExit`) is drawn under that step or task, not beside it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from podline.cli.render import age
from podline.runtime.files import parse_rfc3339
from podline.store import Obj

ICONS = {"Succeeded": "✔", "Failed": "✖", "Error": "⚠", "Skipped": "○", "Omitted": "○", "Pending": "◷",
         "Running": "●"}
LIST_COLUMNS = (["NAME", "STATUS", "AGE", "DURATION", "PROGRESS"], ["MESSAGE"])
TREE_COLUMNS = ["STEP", "TEMPLATE", "PODNAME", "DURATION", "MESSAGE"]

MINUTE, HOUR, DAY, WEEK = 60, 3600, 86400, 7 * 86400
# (below this many seconds, unit in seconds, short name, long name): go-humanize's magnitudes as Argo uses them.
_UNITS = [(MINUTE, 1, "s", "second"), (HOUR, MINUTE, "m", "minute"), (DAY, HOUR, "h", "hour"),
          (WEEK, DAY, "d", "day"), (float("inf"), WEEK, "w", "week")]


def _unit(seconds: float) -> tuple[int, str, str]:
    seconds = max(0.0, seconds)
    for below, size, short, long in _UNITS:
        if seconds < below:
            return int(seconds // size), short, long
    raise AssertionError("unreachable")


def short_duration(seconds: float) -> str:
    """`0s`, `3s`, `1m`, `5h`, `2d`: one truncated unit (Argo's DURATION column)."""
    count, short, _ = _unit(seconds)
    return f"{count}{short}"


def _truncated(seconds: float) -> str:
    count, _, long = _unit(seconds)
    return f"{count} {long}{'' if count == 1 else 's'}"


def long_duration(seconds: float) -> str:
    """`12 seconds`, `3 minutes 4 seconds`, `2 hours 5 minutes`: Argo's `Duration:` line."""
    seconds = max(0.0, seconds)
    if seconds < MINUTE:
        return _truncated(seconds)
    if seconds < HOUR:
        return f"{_truncated(seconds)} {int(seconds % MINUTE)} seconds"
    if seconds < DAY:
        return f"{_truncated(seconds)} {int(seconds % HOUR // MINUTE)} minutes"
    return f"{_truncated(seconds)} {int(seconds % DAY // HOUR)} hours"


def ago(seconds: float) -> str:
    return "now" if seconds < 1 else f"{_truncated(seconds)} ago"


def timestamp(at: float, now: float) -> str:
    """`Thu Nov 26 01:54:28 +0000 (2 minutes ago)`, in the local time zone, as `argo get` prints times."""
    return f"{datetime.fromtimestamp(at).astimezone().strftime('%a %b %d %H:%M:%S %z')} ({ago(now - at)})"


def _span(status: dict[str, Any], now: float) -> float | None:
    """Seconds from startedAt to finishedAt (or to now while it runs); None before it starts."""
    if not status.get("startedAt"):
        return None
    end = parse_rfc3339(status["finishedAt"]) if status.get("finishedAt") else now
    return end - parse_rfc3339(status["startedAt"])


def phase_word(obj: Obj) -> str:
    return "Terminating" if obj.deleted_at else obj.status.get("phase") or "Pending"


# --- get ---------------------------------------------------------------------------------------------

def list_headers(wide: bool) -> list[str]:
    base, extra = LIST_COLUMNS
    return base + extra if wide else list(base)


def list_row(obj: Obj, wide: bool, now: float) -> list[str]:
    """NAME STATUS AGE DURATION PROGRESS [MESSAGE], like `argo list` (STATUS is the workflow's phase)."""
    span = _span(obj.status, now)
    row = [obj.name, phase_word(obj), age(obj.created_at, now), "" if span is None else short_duration(span),
           obj.status.get("progress", "")]
    return row + [obj.status.get("message", "")] if wide else row


# --- describe ----------------------------------------------------------------------------------------

def _field(key: str, value: object) -> str:
    return f"{key + ':':<20} {value}".rstrip()


def header_lines(obj: Obj, now: float) -> list[str]:
    """The top of `argo get`: name, status, times, progress and the workflow's parameters."""
    status, meta = obj.status, obj.manifest.get("metadata", {})
    lines = [_field("Name", obj.name), _field("Namespace", obj.namespace), _field("Status", phase_word(obj))]
    if status.get("message"):
        lines.append(_field("Message", status["message"]))
    for key, label in (("labels", "Labels"), ("annotations", "Annotations")):
        if meta.get(key):
            lines.append(_field(label, ", ".join(f"{k}={v}" for k, v in meta[key].items())))
    lines.append(_field("Created", timestamp(obj.created_at, now)))
    if status.get("startedAt"):
        lines.append(_field("Started", timestamp(parse_rfc3339(status["startedAt"]), now)))
    if status.get("finishedAt"):
        lines.append(_field("Finished", timestamp(parse_rfc3339(status["finishedAt"]), now)))
    span = _span(status, now)
    if span is not None:
        lines.append(_field("Duration", long_duration(span)))
    lines.append(_field("Progress", status.get("progress", "")))
    spec = status.get("storedWorkflowTemplateSpec") or obj.manifest.get("spec", {})  # as it runs (merged)
    parameters = [p for p in spec.get("arguments", {}).get("parameters", [])
                  if p.get("value", p.get("default")) is not None]
    if parameters:
        lines.append(_field("Parameters", ""))
        lines += [_field("  " + p["name"], p.get("value", p.get("default"))) for p in parameters]
    return lines


def _attempt_or_hook(parent: dict[str, Any], child: dict[str, Any]) -> bool:
    """Whether `child` hangs under `parent` when drawn: a step of a step group, an attempt of a Retry node, or
    the `<node>.onExit` hook of any node. (Other children are links of Argo's execution order: the next step
    group under the previous group's steps, a DAG task under the tasks it depends on.)"""
    name, kind = child["name"], child["type"]
    if name == parent["name"] + ".onExit":
        return True
    if parent["type"] == "StepGroup":
        return kind != "StepGroup" and name.startswith(parent["name"] + ".")
    if parent["type"] == "Retry":
        return re.fullmatch(re.escape(parent["name"]) + r"\(\d+\)", name) is not None
    return False


def _start(node: dict[str, Any]) -> float:
    return parse_rfc3339(node["startedAt"]) if node.get("startedAt") else float("inf")


def render_tree(nodes: dict[str, dict[str, Any]]) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Each node's children as drawn, and the roots: built as `argo get` builds its tree
    (cmd/argo/commands/common/get.go), from boundaries rather than from the execution links in `children`.

    A step of a step group, an attempt of a Retry and a `<node>.onExit` hook are drawn under that node, in
    the order it lists them; every other node is drawn under its boundary (the steps or DAG node whose
    template it runs in), sorted by start time as Argo sorts them (ties: the order the nodes were made, which
    is the order the template lists its groups and tasks and a loop its items). A TaskGroup is not drawn:
    a looped DAG task's items sit directly under the DAG. A node with no boundary is a root."""
    order = {nid: i for i, nid in enumerate(nodes)}
    drawn: dict[str, list[dict[str, Any]]] = {nid: [] for nid in nodes}
    claimed: set[str] = set()
    for parent in nodes.values():
        for cid in parent.get("children", []):
            child = nodes.get(cid)
            if child is not None and cid not in claimed and _attempt_or_hook(parent, child):
                drawn[parent["id"]].append(child)
                claimed.add(cid)
    contained: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for nid, node in nodes.items():
        if nid in claimed or node["type"] == "TaskGroup":
            continue
        boundary = node.get("boundaryID")
        if boundary in nodes and boundary != nid:
            contained.setdefault(boundary, []).append(node)
        else:
            roots.append(node)
    for boundary, members in contained.items():
        drawn[boundary] += sorted(members, key=lambda n: (_start(n), order[n["id"]]))
    return drawn, sorted(roots, key=lambda n: (_start(n), order[n["id"]]))


def _hidden(node: dict[str, Any], children: list[dict[str, Any]]) -> bool:
    """Nodes Argo draws as tree lines rather than rows: step groups and a Retry with one attempt."""
    return node["type"] == "StepGroup" or (node["type"] == "Retry" and len(children) == 1)


def _cells(node: dict[str, Any], prefix: str, pods: dict[str, str], now: float) -> list[str]:
    step = f"{prefix}{ICONS.get(node['phase'], '?')} {node['displayName']}"
    pod, duration = "", ""
    if node["type"] == "Pod":
        pod = pods.get(node["id"], "")
        span = _span(node, now)
        duration = "" if span is None else short_duration(span)
    return [step, template_label(node), pod, duration, node.get("message", "")]


def template_label(node: dict[str, Any]) -> str:
    """The TEMPLATE column: a template's name, or `WORKFLOWTEMPLATE/TEMPLATE` for one called by templateRef."""
    ref = node.get("templateRef")
    return f"{ref['name']}/{ref['template']}" if ref else node.get("templateName", "")


def _walk(drawn: dict[str, list[dict[str, Any]]], node: dict[str, Any], prefix: str, below: str,
          pods: dict[str, str], now: float, rows: list[list[str]], seen: set[str]) -> None:
    """Add `node`'s row (drawn after `prefix`) and its subtree (whose lines start with `below`)."""
    if node["id"] in seen:
        return
    seen.add(node["id"])
    children = drawn.get(node["id"], [])
    hidden = _hidden(node, children)
    if not hidden:
        rows.append(_cells(node, prefix, pods, now))
    last = len(children) - 1
    fork = node["type"] == "StepGroup"
    for i, child in enumerate(children):
        if hidden and fork:  # a step group: its steps fork off the line that would have been its row
            part = "──" if last == 0 else "┬─" if i == 0 else "└─" if i == last else "├─"
            rest = "│ " if 0 < last and i < last else "  "
        elif hidden:  # a single retry attempt stands in for its Retry node
            part, rest = "", ""
        else:
            part, rest = ("└─", "  ") if i == last else ("├─", "│ ")
        start = prefix if hidden and i == 0 else below
        _walk(drawn, child, start + part, below + rest, pods, now, rows, seen)


def tree_rows(obj: Obj, now: float) -> list[list[str]]:
    """STEP TEMPLATE PODNAME DURATION MESSAGE rows: the entrypoint's tree, then (after an empty row) the onExit
    handler's and any other tree whose root has no boundary."""
    nodes: dict[str, dict[str, Any]] = obj.status.get("nodes") or {}
    if obj.name not in nodes:
        return []
    pods: dict[str, str] = obj.internal.get("pods", {})
    drawn, roots = render_tree(nodes)
    rows: list[list[str]] = []
    seen: set[str] = set()
    for i, root in enumerate([nodes[obj.name], *(r for r in roots if r["id"] != obj.name)]):
        if i:
            rows.append([""] * len(TREE_COLUMNS))
        _walk(drawn, root, " ", " ", pods, now, rows, seen)
    return rows


def table_lines(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Columns two spaces apart (Go's tabwriter, as Argo prints), trailing blanks trimmed."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [headers, *rows]]


def describe_lines(obj: Obj, now: float) -> list[str]:
    """`argo get`'s page: the header, then the node tree when the workflow has started."""
    lines = header_lines(obj, now)
    rows = tree_rows(obj, now)
    if rows:
        lines += ["", *table_lines(TREE_COLUMNS, rows)]
    return lines
