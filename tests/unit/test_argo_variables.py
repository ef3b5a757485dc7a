"""Argo's documented variables as the walker resolves them, in Argo's formats: the `workflow.*` globals
(labels, annotations, parameters as JSON, the creation time in strftime characters, the duration), the
times and host of a finished step or task, withParam items that keep their JSON text, and the entries of
`{{workflow.failures}}`. Each case was an "unresolved reference" (or a different text) before.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from podline.api.loader import load_text
from podline.controller.argo_globals import creation_globals, duration_global, manifest_globals
from podline.controller.argo_nodes import Walker
from podline.controller.workflows import _failures
from podline.plan.argo_expr import item_label, item_scope, parse_items
from podline.plan.workflow_pod import pod_name
from podline.runtime.files import parse_rfc3339, rfc3339
from tests.unit.test_argo_walker import EMIT, FakePods, dag, failed, nid, ok, steps

CREATED = "2024-03-05T19:08:09.654321Z"  # a Tuesday, 7 PM
STARTED = "2024-03-05T19:08:10.000000Z"
META = "metadata:\n  name: wf\n  labels: {team: data, app.kubernetes.io/part-of: demo}\n" \
       "  annotations: {note: 'a <b> & c', owner: platform}\n"


class Walk:
    """A workflow advanced pass by pass, as the controller builds its Walker (creation time, start, hosts)."""

    def __init__(self, spec: str, meta: str = "metadata: {name: wf}\n") -> None:
        self.wf = load_text("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n" + meta + "spec:\n" + spec,
                            "test")[0].obj.dump()
        self.nodes: dict[str, dict[str, Any]] = {}
        self.pods = FakePods()
        self.now = parse_rfc3339(STARTED)
        self.hosts: dict[str, str] = {}
        self.root: dict[str, Any] = {}

    def step(self, finish: dict[str, dict[str, Any]] | None = None, seconds: float = 1.5) -> Walk:
        for name, status in (finish or {}).items():
            self.pods.status[nid(name)] = status
        self.now += seconds
        walker = Walker(self.wf, self.nodes, self.pods, self.now, rfc3339,
                        {"workflow.uid": "uid-1", "workflow.creationTimestamp": CREATED},
                        started=STARTED, hosts=self.hosts)
        self.root, _ = walker.run(lambda root: {"workflow.status": root["phase"],
                                                "workflow.failures": _failures(self.nodes)})
        return self

    def args(self, name: str) -> list[str]:
        return self.pods.started[nid(name)]["template"]["container"]["args"]

    def n(self, name: str) -> dict[str, Any]:
        return self.nodes[nid(name)]


def one_step(*args: str) -> str:
    """A workflow of one echo step whose container prints `args`."""
    quoted = ", ".join(json.dumps(a) for a in args)
    show = f"  - name: show\n    container: {{image: busybox, args: [{quoted}]}}\n"
    return steps(["name: a, template: show"], extra=show)


def shows(*values: str) -> tuple[str, str]:
    """A call passing `values` to the template `show` (its container prints them), and that template."""
    names = [f"t{i}" for i in range(len(values))]
    passed = ", ".join(f"{{name: {n}, value: '{v}'}}" for n, v in zip(names, values, strict=True))
    printed = ", ".join(f"'{{{{inputs.parameters.{n}}}}}'" for n in names)
    template = (f"  - name: show\n    inputs: {{parameters: [{', '.join(f'{{name: {n}}}' for n in names)}]}}\n"
                f"    container: {{image: busybox, args: [{printed}]}}\n")
    return f"template: show, arguments: {{parameters: [{passed}]}}", template


# ------------------------------------------------------------------------------------------ workflow.* globals


def test_labels_annotations_and_parameters_resolve_as_argo_writes_them() -> None:
    spec = "  arguments: {parameters: [{name: a, value: 1}, {name: b, value: 'x\"y<', enum: [x, 'x\"y<'], " \
           "description: the b}]}\n" + one_step(
               "{{workflow.labels.team}}", "{{workflow.labels.json}}", "{{workflow.annotations.note}}",
               "{{workflow.annotations.json}}", "{{workflow.parameters.json}}", "{{workflow.parameters}}",
               "{{workflow.mainEntrypoint}}", "{{workflow.labels.app.kubernetes.io/part-of}}")
    walk = Walk(spec, META).step()
    params = '[{"name":"a","value":"1"},{"name":"b","value":"x\\"y\\u003c","enum":["x","x\\"y\\u003c"],' \
             '"description":"the b"}]'  # Go's json.Marshal of Argo's Parameter: its field order, <>& escaped
    assert walk.args("wf[0].a") == [
        "data", '{"app.kubernetes.io/part-of":"demo","team":"data"}', "a <b> & c",
        '{"note":"a \\u003cb\\u003e \\u0026 c","owner":"platform"}', params, params, "main", "demo"]


def test_a_workflow_without_labels_or_parameters_has_null_json_as_go_writes_a_nil_map() -> None:
    walk = Walk(one_step("{{workflow.labels.json}}", "{{workflow.annotations.json}}",
                         "{{workflow.parameters.json}}", "{{workflow.serviceAccountName}}")).step()
    assert walk.args("wf[0].a") == ["null", "null", "null", ""]


def test_service_account_priority_and_workflow_metadata_when_the_spec_has_them() -> None:
    spec = {"entrypoint": "main", "serviceAccountName": "runner", "priority": 5,
            "workflowMetadata": {"labels": {"extra": "yes"}}}
    out = manifest_globals({"metadata": {"name": "wf", "labels": {"team": "data"}}, "spec": spec})
    assert (out["workflow.serviceAccountName"], out["workflow.priority"]) == ("runner", "5")
    assert (out["workflow.labels.extra"], out["workflow.labels.json"]) == ("yes", '{"team":"data"}')
    assert "workflow.priority" not in manifest_globals({"spec": {"entrypoint": "main"}})  # unset: unresolved


def test_the_creation_time_in_every_strftime_character_argo_knows() -> None:
    out = creation_globals(CREATED)
    key = "workflow.creationTimestamp"
    assert {k.removeprefix(key + "."): v for k, v in out.items() if k.startswith(key + ".")} == {
        "B": "March", "b": "Mar", "m": "03", "A": "Tuesday", "a": "Tue", "d": "05", "H": "19", "I": "07",
        "M": "08", "S": "09", "Y": "2024", "y": "24", "p": "PM", "Z": "UTC", "z": "+0000", "L": ".000",
        "s": str(int(parse_rfc3339(CREATED))), "RFC3339": "2024-03-05T19:08:09Z"}
    assert out[key] == "2024-03-05T19:08:09Z"  # Go's time.RFC3339: whole seconds


def test_creation_time_and_duration_reach_a_step() -> None:
    walk = Walk(one_step("{{workflow.creationTimestamp}}", "{{workflow.creationTimestamp.Y}}",
                         "{{workflow.creationTimestamp.m}}", "{{workflow.creationTimestamp.RFC3339}}",
                         "{{workflow.duration}}")).step(seconds=2.25)
    assert walk.args("wf[0].a") == ["2024-03-05T19:08:09Z", "2024", "03", "2024-03-05T19:08:09Z", "2.250000"]


@pytest.mark.parametrize(("started", "now", "text"), [
    (STARTED, parse_rfc3339(STARTED), "0.000000"), (STARTED, parse_rfc3339(STARTED) + 61.5, "61.500000")])
def test_duration_is_seconds_as_gos_percent_f(started: str, now: float, text: str) -> None:
    assert duration_global(started, now) == {"workflow.duration": text}
    assert duration_global(None, now) == {}


def test_an_exit_handler_sees_the_duration_of_the_whole_run() -> None:
    spec = "  onExit: bye\n" + steps(["name: a"], extra="  - name: bye\n    container: {image: busybox,"
                                      " args: ['{{workflow.duration}}', '{{workflow.status}}']}\n")
    walk = Walk(spec).step(seconds=1).step({"wf[0].a": failed()}, seconds=9.5)
    assert walk.args("wf.onExit") == ["10.500000", "Failed"]


# --------------------------------------------------------------------------------- steps.X.* / tasks.X.* times


def test_a_finished_steps_times_and_host() -> None:
    call, show = shows("{{steps.a.startedAt}}", "{{steps.a.finishedAt}}", "{{steps.a.hostNodeName}}")
    walk = Walk(steps(["name: a"], [f"name: b, {call}"], extra=show))
    walk.hosts[nid("wf[0].a")] = "node-7"
    walk.step(seconds=1).step({"wf[0].a": ok()}, seconds=2)
    assert walk.n("wf[0].a")["hostNodeName"] == "node-7"  # recorded on the node, as Argo's status has it
    assert walk.args("wf[1].b") == ["2024-03-05T19:08:11Z", "2024-03-05T19:08:13Z", "node-7"]


def test_a_finished_tasks_times_and_host_are_its_last_attempts_when_retried() -> None:
    """As Argo's buildLocalScope reads a Retry node: from its last attempt (id, times, host)."""
    call, show = shows("{{tasks.a.startedAt}}", "{{tasks.a.finishedAt}}", "{{tasks.a.id}}",
                       "{{tasks.a.hostNodeName}}")
    spec = dag("name: a, template: flaky", f"name: b, depends: a, {call}",
               extra="  - name: flaky\n    retryStrategy: {limit: 1}\n    container: {image: busybox}\n" + show)
    walk = Walk(spec)
    walk.hosts[nid("wf.a(1)")] = "node-2"
    walk.step(seconds=1).step({"wf.a(0)": failed()}, seconds=2).step({"wf.a(1)": ok()}, seconds=3)
    assert walk.n("wf.a")["type"] == "Retry"
    assert walk.args("wf.b") == ["2024-03-05T19:08:13Z", "2024-03-05T19:08:16Z", nid("wf.a(1)"), "node-2"]


# -------------------------------------------------------------------------------------------- withParam items


def test_with_param_items_keep_their_json_text() -> None:
    text = '[1.50, 1e3, {"k": 1.0, "b": [1, 2.50]}, "a<b", true, null, [1.0, {"z": 1, "y": 2}], -0, "x(1)"]'
    items = parse_items(text)
    assert items == json.loads(text)  # still the values json.loads reads
    assert [item_scope(i)["item"] for i in items] == [
        "1.50", "1e3", '{"b":[1,2.50],"k":1.0}', "a<b", "true", "null", '[1.0,{"z":1,"y":2}]', "-0", "x(1)"]
    assert [item_label(i) for i in items] == [
        "1.50", "1e3", "b:[1,2.50],k:1.0", "a<b", "true", "[]", '[1.0 {"z":1,"y":2}]', "-0", "x1"]
    assert item_scope(items[2]) == {"item": '{"b":[1,2.50],"k":1.0}', "item.k": "1.0", "item.b": "[1,2.50]"}


def test_with_param_strings_are_written_as_argos_item_string() -> None:
    """Argo's Item.String(): a string's JSON text without its quotes (escapes as written), <, >, & restored."""
    items = parse_items('["caf\\u00e9", "tab\\there", "<&>", "\\u003c"]')
    assert items == ["café", "tab\there", "<&>", "<"]
    assert [item_scope(i)["item"] for i in items] == ["caf\\u00e9", "tab\\there", "<&>", "<"]
    assert item_scope(parse_items('[{"s": "<x>", "m": {"q": "<"}}]')[0]) == {
        "item": '{"m":{"q":"\\u003c"},"s":"\\u003cx\\u003e"}', "item.s": "<x>", "item.m": '{"q":"<"}',
        "item.m.q": "<"}


@pytest.mark.parametrize("text", ["[NaN]", "[1, Infinity]", '{"a": 1}', "[1,]"])
def test_with_param_refuses_what_go_cannot_read(text: str) -> None:
    from podline.plan.argo_expr import ExpressionError
    with pytest.raises(ExpressionError):
        parse_items(text)


def test_a_with_param_loop_names_its_nodes_and_passes_items_by_their_text() -> None:
    walk = Walk(steps(["name: wp, withParam: '[1.50, 1e3, {\"k\": 1.0}]', xv: '{{item}}'"])).step()
    names = ["wf[0].wp(0:1.50)", "wf[0].wp(1:1e3)", "wf[0].wp(2:k:1.0)"]
    assert walk.pods.order == names
    assert [walk.args(n) for n in names] == [["1.50"], ["1e3"], ['{"k":1.0}']]


def test_a_loops_outputs_feed_a_with_param_as_argo_writes_them() -> None:
    """The aggregated outputs are Go's JSON (non-ASCII as is), so the next loop's items are the values."""
    walk = Walk(steps(["name: l, template: emit, withItems: [a, b]"],
                      ["name: u, withParam: '{{steps.l.outputs.parameters.v}}', xv: '{{item}}'"], extra=EMIT)).step()
    walk.step({"wf[0].l(0:a)": ok(v="café"), "wf[0].l(1:b)": ok(v="<b>")})
    assert [walk.args(n) for n in walk.pods.order[2:]] == [["café"], ["<b>"]]
    assert walk.pods.order[2:] == ["wf[1].u(0:café)", "wf[1].u(1:<b>)"]


def test_with_items_numbers_follow_gos_float_formatting() -> None:
    walk = Walk(steps(["name: wi, withItems: [1.50, 2.0, 0.0000001, 3], xv: '{{item}}'"])).step()
    assert walk.pods.order == ["wf[0].wi(0:1.5)", "wf[0].wi(1:2)", "wf[0].wi(2:1e-7)", "wf[0].wi(3:3)"]


# ------------------------------------------------------------------------------------------ workflow.failures


def test_failures_name_the_real_pod_and_a_template_refs_template() -> None:
    nodes = {
        "wf": {"id": "wf", "name": "wf", "displayName": "wf", "type": "Steps", "phase": "Failed"},
        "wf-1": {"id": "wf-1", "name": "wf[0].a", "displayName": "a", "type": "Pod", "phase": "Failed",
                 "templateName": "echo", "message": "Error (exit code 1)", "finishedAt": STARTED},
        "wf-2": {"id": "wf-2", "name": "wf[0].b", "displayName": "b", "type": "Pod", "phase": "Error",
                 "templateRef": {"name": "lib", "template": "Build"}, "message": "bad", "finishedAt": STARTED},
    }
    entries = {e["displayName"]: e for e in json.loads(_failures(nodes, {"wf-1": "wf-echo-1"}))}
    assert entries["a"] == {"displayName": "a", "message": "Error (exit code 1)", "templateName": "echo",
                            "phase": "Failed", "podName": "wf-echo-1", "finishedAt": "2024-03-05T19:08:10Z"}
    assert entries["b"] == {"displayName": "b", "message": "bad", "templateName": "Build", "phase": "Error",
                            "podName": pod_name("wf", "Build", "wf-2"), "finishedAt": "2024-03-05T19:08:10Z"}
    assert entries["b"]["podName"] == "wf-build-2"  # never started: the name Argo gives its pod
