"""The Argo Workflow walker (podline.controller.argo_nodes.Walker) driven pass by pass through a fake `Pods`
port: the node tree it builds (Argo's names, ids, types, phases, children, boundaryID), which pods it starts
and when, and what outputs and scopes it hands on. As in the controller, each pass is a new Walker over the
same stored `nodes`, so these tests also show what a restarted controller would do.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podline.api.loader import load_text
from podline.controller.argo_nodes import TooManyNodes, Walker
from podline.controller.workflows import _failures
from podline.plan.workflow_pod import pod_name
from podline.runtime.files import rfc3339

HEAD = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: wf}\nspec:\n"
T0 = 1_700_000_000.0
# a container template echoing one input: what it was started with shows in template["container"]["args"]
ECHO = '  - name: echo\n    inputs: {parameters: [{name: x, value: "-"}]}\n' \
       '    container: {image: busybox, args: ["{{inputs.parameters.x}}"]}\n'
EMIT = '  - name: emit\n    inputs: {parameters: [{name: x, value: "-"}]}\n' \
       '    outputs: {parameters: [{name: v, valueFrom: {path: /tmp/v}}, {name: p, valueFrom: {path: /tmp/p}}]}\n' \
       '    container: {image: busybox, args: ["{{inputs.parameters.x}}"]}\n'  # echo, declaring the outputs fed


def fnv32a(text: str) -> int:
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def nid(name: str) -> str:
    return "wf" if name == "wf" else f"wf-{fnv32a(name)}"


def exited(phase: str, code: int, outputs: dict[str, Any]) -> dict[str, Any]:
    """A pod status as the pod runner reports it: phase, the main container's exit and the collected outputs."""
    reason = "Completed" if code == 0 else "Error"
    return {"phase": phase, "outputs": {"exitCode": str(code), **outputs},
            "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": code, "reason": reason}}}]}


def ok(result: str = "", **params: str) -> dict[str, Any]:
    return exited("Succeeded", 0, {"result": result,
                                   "parameters": [{"name": k, "value": v} for k, v in params.items()]})


def failed(code: int = 1) -> dict[str, Any]:
    return exited("Failed", code, {})


ERROR = {"phase": "Failed", "reason": "RunnerLost", "message": "the node running the pod went away"}


class FakePods:
    """The `Pods` port: records every start, and reports whatever status the test gives a started pod."""

    def __init__(self) -> None:
        self.started: dict[str, dict[str, Any]] = {}  # node id -> {name, template, artifacts}
        self.order: list[str] = []  # node names in start order
        self.status: dict[str, dict[str, Any]] = {}

    def observe(self, node: dict[str, Any]) -> dict[str, Any] | None:
        if node["id"] not in self.started:
            return None
        return copy.deepcopy(self.status.get(node["id"], {"phase": "Pending"}))

    def start(self, node: dict[str, Any], template: dict[str, Any], artifacts: list[dict[str, Any]]) -> bool:
        self.started[node["id"]] = {"name": node["name"], "template": template, "artifacts": artifacts}
        self.order.append(node["name"])
        return True


class Run:
    """One workflow, its stored nodes and pods, advanced a pass at a time."""

    def __init__(self, spec: str, reload: bool = False) -> None:
        self.wf = load_text(HEAD + spec, "test")[0].obj.dump()
        self.nodes: dict[str, dict[str, Any]] = {}
        self.pods = FakePods()
        self.now = T0
        self.reload = reload  # store and read the nodes back as JSON between passes (a restart each time)
        self.root: dict[str, Any] = {}
        self.exit: dict[str, Any] | None = None
        self.wake: float | None = None

    def step(self, finish: dict[str, dict[str, Any]] | None = None, seconds: float = 1.0) -> Run:
        """Give the named pods (by node name) a status, then advance `seconds` and walk once."""
        for name, status in (finish or {}).items():
            self.set(name, status)
        self.now += seconds
        if self.reload:
            self.nodes = json.loads(json.dumps(self.nodes))
        walker = Walker(self.wf, self.nodes, self.pods, self.now, rfc3339, {"workflow.uid": "uid-1"})
        self.root, self.exit = walker.run(lambda root: {"workflow.status": root["phase"],
                                                        "workflow.failures": _failures(self.nodes)})
        self.wake = walker.wake
        return self

    def set(self, name: str, status: dict[str, Any]) -> None:
        assert nid(name) in self.pods.started, f"{name} was not started: {self.pods.order}"
        self.pods.status[nid(name)] = status

    def n(self, name: str) -> dict[str, Any]:
        return self.nodes[nid(name)]

    def phase(self, name: str) -> str:
        return self.n(name)["phase"]

    def args(self, name: str) -> list[str]:
        return self.pods.started[nid(name)]["template"]["container"]["args"]

    def kids(self, name: str) -> list[str]:
        return [self.nodes[c]["name"] for c in self.n(name).get("children", [])]


def call(text: str) -> str:
    """A step or task as a YAML flow mapping: `template: echo` unless it names one; `xv: V` gives echo its x."""
    text = text if "template:" in text else f"{text}, template: echo"
    return "{" + re.sub(r"\bxv: ('[^']*'|[^,]+)", r"arguments: {parameters: [{name: x, value: \1}]}", text) + "}"


def steps(*groups: list[str], extra: str = "") -> str:
    body = "".join(f"    - - {call(g[0])}\n" + "".join(f"      - {call(s)}\n" for s in g[1:]) for g in groups)
    return f"  entrypoint: main\n  templates:\n  - name: main\n    steps:\n{body}{ECHO}{extra}"


def dag(*tasks: str, extra: str = "", fail_fast: bool = True) -> str:
    body = "".join(f"      - {call(t)}\n" for t in tasks)
    head = "" if fail_fast else "      failFast: false\n"
    return f"  entrypoint: main\n  templates:\n  - name: main\n    dag:\n{head}      tasks:\n{body}{ECHO}{extra}"


# ------------------------------------------------------------------------------------------------- steps

TWO_GROUPS = steps(["name: a, xv: A", "name: b"], ["name: c, xv: '{{steps.a.outputs.result}}'"])


def test_step_groups_run_in_order_and_the_children_of_one_group_start_together() -> None:
    assert (fnv32a(""), fnv32a("a")) == (0x811C9DC5, 0xE40C292C)  # FNV-1a test vectors: ids are Argo's
    run = Run(TWO_GROUPS).step()
    assert run.pods.order == ["wf[0].a", "wf[0].b"]
    root, group, a = run.n("wf"), run.n("wf[0]"), run.n("wf[0].a")
    assert (root["id"], root["type"], root["phase"], root["templateName"], root["displayName"]) == \
        ("wf", "Steps", "Running", "main", "wf")
    assert "boundaryID" not in root and nid("wf[0]") in root["children"]
    assert (group["id"], group["type"], group["displayName"], group["boundaryID"]) == \
        (nid("wf[0]"), "StepGroup", "[0]", "wf")
    assert run.kids("wf[0]") == ["wf[0].a", "wf[0].b"]
    assert (a["type"], a["displayName"], a["boundaryID"], a["templateName"], a["phase"]) == \
        ("Pod", "a", "wf", "echo", "Pending")
    assert run.args("wf[0].a") == ["A"] and run.args("wf[0].b") == ["-"]
    assert "startedAt" in a and "finishedAt" not in a and a["inputs"] == {"parameters": [{"name": "x", "value": "A"}]}
    run.step({"wf[0].a": ok("from-a")})
    assert run.phase("wf[0].a") == "Succeeded" and run.phase("wf[0]") == "Running"
    assert nid("wf[1]") not in run.nodes and len(run.pods.order) == 2  # c waits for all of group 0
    run.step({"wf[0].b": {"phase": "Running"}})
    assert run.phase("wf[0].b") == "Running" and len(run.pods.order) == 2
    run.step({"wf[0].b": ok()})
    assert run.phase("wf[0]") == "Succeeded" and run.pods.order[2:] == ["wf[1].c"]
    assert run.args("wf[1].c") == ["from-a"] and run.n("wf[1]")["displayName"] == "[1]"
    run.step({"wf[1].c": ok()})
    assert run.root["phase"] == "Succeeded" and run.n("wf[0].a")["outputs"]["result"] == "from-a"
    assert all("finishedAt" in n for n in run.nodes.values())


def test_step_groups_are_chained_through_their_steps_as_in_argo() -> None:
    run = Run(TWO_GROUPS).step().step({"wf[0].a": ok(), "wf[0].b": ok()})
    assert run.kids("wf") == ["wf[0]"]
    assert run.kids("wf[0].a") == ["wf[1]"] and run.kids("wf[0].b") == ["wf[1]"]


def test_a_failed_step_fails_its_group_and_the_steps_node_and_nothing_after_it_starts() -> None:
    run = Run(TWO_GROUPS).step().step({"wf[0].a": failed(3)})
    assert run.phase("wf[0].a") == "Failed" and run.n("wf[0].a")["message"] == "Error (exit code 3)"
    assert run.phase("wf[0]") == "Running" and run.root["phase"] == "Running"  # b still runs
    run.step({"wf[0].b": ok()}).step().step()
    assert run.phase("wf[0]") == "Failed" and run.n("wf[0]")["message"] == f"child '{nid('wf[0].a')}' failed"
    assert run.root["phase"] == "Failed" and run.root["message"] == run.n("wf[0]")["message"]
    assert run.pods.order == ["wf[0].a", "wf[0].b"] and "finishedAt" in run.root and nid("wf[1]") not in run.nodes


def test_continue_on_failed_lets_the_next_group_run() -> None:
    run = Run(steps(["name: a, continueOn: {failed: true}"], ["name: c, xv: '{{steps.a.status}}'"]))
    run.step().step({"wf[0].a": failed()})
    assert run.phase("wf[0].a") == "Failed" and run.phase("wf[0]") == "Succeeded"
    assert run.args("wf[1].c") == ["Failed"]
    run.step({"wf[1].c": ok()})
    assert run.root["phase"] == "Succeeded"


def test_when_false_skips_a_step_and_the_steps_after_it_run() -> None:
    run = Run(steps(["name: a"], ["name: hi, when: '{{steps.a.outputs.result}} == yes'",
                                  "name: lo, when: '{{steps.a.outputs.result}} != yes'"], ["name: c"]))
    run.step().step({"wf[0].a": ok("no")})
    skipped = run.n("wf[1].hi")
    assert (skipped["type"], skipped["phase"], skipped["displayName"]) == ("Skipped", "Skipped", "hi")
    assert "evaluated false" in skipped["message"] and nid("wf[1].hi") not in run.pods.started
    assert run.pods.order == ["wf[0].a", "wf[1].lo"]
    run.step({"wf[1].lo": ok()})
    assert run.phase("wf[1]") == "Succeeded" and run.pods.order[-1] == "wf[2].c"


def test_a_skipped_steps_message_shows_the_resolved_when() -> None:
    run = Run(steps(["name: a"], ["name: b, when: '{{steps.a.outputs.result}} == yes'"]))
    run.step().step({"wf[0].a": ok("no")})
    assert run.n("wf[1].b")["message"] == "when 'no == yes' evaluated false"


def test_with_param_loops_over_a_previous_steps_output() -> None:
    run = Run(steps(["name: gen"], ["name: use, withParam: '{{steps.gen.outputs.result}}', xv: '{{item}}'"]))
    run.step().step({"wf[0].gen": ok('[1, "two", {"k": "v"}]')})
    names = ["wf[1].use(0:1)", "wf[1].use(1:two)", "wf[1].use(2:k:v)"]
    assert run.pods.order[1:] == names and run.kids("wf[1]") == names
    assert [run.args(n) for n in names] == [["1"], ["two"], ['{"k":"v"}']]
    assert [run.n(n)["displayName"] for n in names] == ["use(0:1)", "use(1:two)", "use(2:k:v)"]
    run.step({n: ok() for n in names})
    assert run.root["phase"] == "Succeeded"


def test_with_sequence_counts_and_formats() -> None:
    run = Run(steps(["name: s, withSequence: {start: '3', end: '1', format: 'n%02d'}, xv: '{{item}}'"],
                    ["name: t, withSequence: {count: '2'}, xv: '{{item}}'"])).step()
    assert run.pods.order == ["wf[0].s(0:n03)", "wf[0].s(1:n02)", "wf[0].s(2:n01)"]
    assert [run.args(n) for n in run.pods.order] == [["n03"], ["n02"], ["n01"]]
    run.step({n: ok() for n in run.pods.order})
    assert run.pods.order[3:] == ["wf[1].t(0:0)", "wf[1].t(1:1)"]


def test_a_loops_aggregated_result_embeds_json_objects() -> None:
    run = Run(steps(["name: l, withItems: [a, b]"], ["name: u, xv: '{{steps.l.outputs.result}}'"]))
    run.step().step({"wf[0].l(0:a)": ok('{"k": "1"}'), "wf[0].l(1:b)": ok("plain")})
    assert run.args("wf[1].u") == ['[{"k":"1"},"plain"]']


def test_template_outputs_from_a_step_reach_the_caller() -> None:
    inner = ("  - name: inner\n    outputs: {parameters: [{name: out,"
             " valueFrom: {parameter: '{{steps.a.outputs.parameters.p}}'}}]}\n"
             "    steps:\n    - - {name: a, template: emit}\n")
    spec = steps(["name: mid, template: inner"], ["name: use, xv: '{{steps.mid.outputs.parameters.out}}'"],
                 extra=inner + EMIT)
    run = Run(spec).step()
    assert run.pods.order == ["wf[0].mid[0].a"]
    mid = run.n("wf[0].mid")
    assert (mid["type"], mid["boundaryID"], mid["displayName"]) == ("Steps", "wf", "mid")
    assert run.n("wf[0].mid[0].a")["boundaryID"] == nid("wf[0].mid")
    run.step({"wf[0].mid[0].a": ok(p="a & b; $(x)")})
    assert run.n("wf[0].mid")["outputs"]["parameters"] == [{"name": "out", "value": "a & b; $(x)"}]
    assert run.args("wf[1].use") == ["a & b; $(x)"]


# --------------------------------------------------------------------------------------------------- dag

@pytest.mark.parametrize("deps", [("depends: A", "depends: A", "depends: B && C"),
                                  ("dependencies: [A]", "dependencies: [A]", "dependencies: [B, C]")])
def test_dag_starts_tasks_in_the_order_their_depends_allow(deps: tuple[str, str, str]) -> None:
    b, c, d = deps
    run = Run(dag("name: A", f"name: B, {b}, xv: '{{{{tasks.A.outputs.result}}}}'", f"name: C, {c}",
                  f"name: D, {d}")).step()
    assert run.pods.order == ["wf.A"] and run.root["type"] == "DAG"
    a = run.n("wf.A")
    assert (a["displayName"], a["type"], a["boundaryID"], a["templateName"]) == ("A", "Pod", "wf", "echo")
    run.step({"wf.A": ok("a-out")})
    assert run.pods.order == ["wf.A", "wf.B", "wf.C"] and run.args("wf.B") == ["a-out"]
    run.step({"wf.B": ok()})
    assert run.pods.order[3:] == [] and run.root["phase"] == "Running"
    run.step({"wf.C": ok()})
    assert run.pods.order[3:] == ["wf.D"]
    run.step({"wf.D": ok()})
    assert run.root["phase"] == "Succeeded"


def test_dag_tasks_hang_under_the_tasks_they_depend_on_as_in_argo() -> None:
    run = Run(dag("name: A", "name: B, depends: A", "name: C, depends: A", "name: D, depends: B && C"))
    run.step().step({"wf.A": ok()}).step({"wf.B": ok(), "wf.C": ok()})
    assert run.kids("wf") == ["wf.A"] and run.kids("wf.A") == ["wf.B", "wf.C"]
    assert run.kids("wf.B") == ["wf.D"] and run.kids("wf.C") == ["wf.D"]


def test_a_task_whose_depends_is_false_is_omitted_and_so_is_one_after_it() -> None:
    run = Run(dag("name: A", "name: B, depends: A.Failed", "name: C, depends: B", "name: D, depends: A",
                  "name: E, when: '1 > 2'", "name: F, depends: E"))  # a task skipped by `when` counts as done
    run.step()
    assert (run.n("wf.E")["type"], run.phase("wf.E")) == ("Skipped", "Skipped") and run.pods.order == ["wf.A", "wf.F"]
    run.step({"wf.A": ok(), "wf.F": ok()})
    for name in ("wf.B", "wf.C"):
        node = run.n(name)
        assert (node["type"], node["phase"], node["boundaryID"]) == ("Skipped", "Omitted", "wf")
        assert node["message"] == "omitted: depends condition not met" and nid(name) not in run.pods.started
    assert run.pods.order[2:] == ["wf.D"]
    run.step({"wf.D": ok()})
    assert run.root["phase"] == "Succeeded"


def test_a_failure_asked_for_by_depends_lets_the_dag_succeed() -> None:
    run = Run(dag("name: A", "name: B, depends: A.Failed")).step().step({"wf.A": failed()})
    assert run.pods.order == ["wf.A", "wf.B"]
    run.step({"wf.B": ok()})
    assert run.phase("wf.A") == "Failed" and run.root["phase"] == "Succeeded"


def test_an_omitted_leaf_after_a_failure_still_fails_the_dag() -> None:
    run = Run(dag("name: A", "name: B, depends: A.Failed", "name: C, depends: A"))
    run.step().step({"wf.A": failed()}).step({"wf.B": ok()})
    assert run.phase("wf.C") == "Omitted"
    assert run.root["phase"] == "Failed"


@pytest.mark.parametrize(("cont", "deps", "end"), [("failed", "depends: A", failed()),
                                                    ("failed", "dependencies: [A]", failed()),
                                                    ("error", "depends: A", ERROR)])
def test_continue_on_in_a_dag_lets_the_dependents_run(cont: str, deps: str, end: dict[str, Any]) -> None:
    run = Run(dag(f"name: A, continueOn: {{{cont}: true}}", f"name: B, {deps}")).step().step({"wf.A": end})
    assert run.pods.order == ["wf.A", "wf.B"]
    run.step({"wf.B": ok()})
    assert run.root["phase"] == "Succeeded"


@pytest.mark.parametrize("fail_fast", [True, False])
def test_a_failure_does_not_stop_a_ready_task_from_starting_as_in_argos_controller(fail_fast: bool) -> None:
    """Argo's executeDAGTask starts every task whose depends holds while the DAG runs, failFast or not (the
    field's documentation says otherwise; argo-workflows#5223 kept the code): C starts after B, the DAG fails
    once nothing runs."""
    tasks = ("name: A", "name: B", "name: C, depends: B")
    run = Run(dag(*tasks, fail_fast=fail_fast)).step().step({"wf.A": failed()})
    assert run.root["phase"] == "Running" and run.phase("wf.B") == "Pending"
    run.step({"wf.B": ok()})
    assert run.pods.order == ["wf.A", "wf.B", "wf.C"] and run.root["phase"] == "Running"
    run.step({"wf.C": ok()})
    assert run.phase("wf.C") == "Succeeded" and run.root["phase"] == "Failed" and "wf.A" in run.root["message"]


def test_argos_dag_continue_on_fail_example_runs_d_beside_the_failures() -> None:
    """examples/dag-continue-on-fail.yaml (helper-77): B and E fail; D (B.Failed && C) runs all the same, G (E && F)
    is omitted, the workflow fails once D is done."""
    tasks = ("name: A", "name: B, depends: A", "name: C, depends: A", "name: D, depends: B.Failed && C",
             "name: E, depends: A", "name: F, depends: A", "name: G, depends: E && F")
    run = Run(dag(*tasks)).step().step({"wf.A": ok()})
    run.step({"wf.B": failed(), "wf.C": ok(), "wf.E": failed(), "wf.F": ok()})
    assert run.phase("wf.D") == "Pending" and run.phase("wf.G") == "Omitted" and run.root["phase"] == "Running"
    run.step({"wf.D": ok()})
    assert run.phase("wf.D") == "Succeeded" and run.root["phase"] == "Failed", run.root
    assert run.root["message"] == "task 'wf.E' failed"  # G is omitted below E's failure


@pytest.mark.parametrize(("depends", "results", "b_runs"), [
    ("A.AnySucceeded", [ok(), failed(), ok()], True),
    ("A.AnySucceeded", [failed(), failed(), failed()], False),
    ("A.AllFailed", [failed(), ERROR, failed()], True),
])
def test_a_dag_task_loop_is_a_task_group_of_its_items(depends: str, results: list[dict[str, Any]],
                                                      b_runs: bool) -> None:
    run = Run(dag("name: A, withItems: [x, y, z], xv: '{{item}}'", f"name: B, depends: {depends}")).step()
    items = ["wf.A(0:x)", "wf.A(1:y)", "wf.A(2:z)"]
    group = run.n("wf.A")
    assert (group["type"], group["displayName"], group["boundaryID"]) == ("TaskGroup", "A", "wf")
    assert run.kids("wf.A") == items and run.pods.order == items
    assert [run.args(i) for i in items] == [["x"], ["y"], ["z"]]
    assert [(run.n(i)["displayName"], run.n(i)["boundaryID"]) for i in items] == \
        [("A(0:x)", "wf"), ("A(1:y)", "wf"), ("A(2:z)", "wf")]
    run.step(dict(zip(items, results, strict=True)))
    assert run.phase("wf.A") == "Failed"
    assert (nid("wf.B") in run.pods.started) is b_runs
    if b_runs:
        run.step({"wf.B": ok()})
        assert run.root["phase"] == "Succeeded"
    else:
        assert run.phase("wf.B") == "Omitted"


# ------------------------------------------------------------------------------------------------- retries

def retrying(strategy: str) -> str:
    return steps(["name: a, template: flaky"], extra=f"  - name: flaky\n    retryStrategy: {strategy}\n"
                 "    container: {image: busybox, args: ['{{retries}}']}\n")


def test_retry_limit_counts_retries_not_attempts() -> None:
    run = Run(retrying("{limit: '2', retryPolicy: Always}")).step()
    retry = run.n("wf[0].a")
    assert (retry["type"], retry["displayName"]) == ("Retry", "a") and run.pods.order == ["wf[0].a(0)"]
    for k in range(2):
        run.step({f"wf[0].a({k})": failed()})
        assert run.pods.order[-1] == f"wf[0].a({k + 1})" and run.phase("wf[0].a") == "Running"
    attempt = run.n("wf[0].a(1)")
    assert (attempt["type"], attempt["displayName"], attempt["boundaryID"]) == ("Pod", "a(1)", "wf")
    run.step({"wf[0].a(2)": failed(7)}).step().step()
    assert run.kids("wf[0].a") == run.pods.order == ["wf[0].a(0)", "wf[0].a(1)", "wf[0].a(2)"]
    assert [run.args(n) for n in run.pods.order] == [["0"], ["1"], ["2"]]  # {{retries}}
    assert run.phase("wf[0].a") == "Failed" and run.n("wf[0].a")["message"] == "No more retries left"  # Argo's
    assert "exit code 7" in run.n("wf[0].a(2)")["message"]  # TestParametrizableLimit (helper-77)
    assert run.root["phase"] == "Failed"


def test_a_retry_limit_from_a_parameter_is_substituted_when_the_step_runs() -> None:
    args = "  arguments: {parameters: [{name: retries, value: '1'}]}\n"
    run = Run(args + retrying("{limit: '{{workflow.parameters.retries}}', retryPolicy: Always}")).step()
    run.step({"wf[0].a(0)": failed()}).step({"wf[0].a(1)": failed()}).step()
    assert run.pods.order == ["wf[0].a(0)", "wf[0].a(1)"] and run.phase("wf[0].a") == "Failed"
    bad = Run("  arguments: {parameters: [{name: retries, value: 'two'}]}\n"
              + retrying("{limit: '{{workflow.parameters.retries}}'}")).step()
    assert bad.phase("wf[0].a") == "Error" and not bad.pods.order
    assert "'two', not a whole number" in bad.n("wf[0].a")["message"]


@pytest.mark.parametrize(("policy", "error", "retried"), [
    ("OnFailure", True, False), ("Always", True, True), ("OnError", True, True),
    ("OnFailure", False, True), ("OnError", False, False)])
def test_retry_policy_decides_what_is_retried(policy: str, error: bool, retried: bool) -> None:
    run = Run(retrying(f"{{limit: 1, retryPolicy: {policy}}}")).step()
    run.step({"wf[0].a(0)": ERROR if error else failed()})  # an Error: the pod failed without its container exiting
    assert run.phase("wf[0].a(0)") == ("Error" if error else "Failed")
    assert (nid("wf[0].a(1)") in run.pods.started) is retried
    if not retried:
        assert run.phase("wf[0].a") == run.phase("wf[0].a(0)") and run.root["phase"] == "Failed"
    else:  # a retry that succeeds carries its attempt's outputs
        run.step({"wf[0].a(1)": ok("done")})
        assert run.phase("wf[0].a") == "Succeeded" and run.n("wf[0].a")["outputs"]["result"] == "done"
        assert run.root["phase"] == "Succeeded" and len(run.pods.order) == 2


def test_backoff_asks_for_a_wake_and_starts_nothing_before_it() -> None:
    run = Run(retrying("{limit: 3, retryPolicy: Always, backoff: {duration: '10', factor: '2'}}")).step()
    assert run.wake is None
    run.step({"wf[0].a(0)": failed()})
    failed_at = run.now
    assert run.wake == failed_at + 10 and run.pods.order == ["wf[0].a(0)"] and run.phase("wf[0].a") == "Running"
    run.step(seconds=9)
    assert run.wake == failed_at + 10 and len(run.pods.order) == 1
    run.step(seconds=1)
    assert run.pods.order[-1] == "wf[0].a(1)"
    run.step({"wf[0].a(1)": failed()}, seconds=1)
    assert run.wake == run.now + 20  # duration * factor ** (retries so far)
    run.step(seconds=19.5)
    assert len(run.pods.order) == 2
    run.step(seconds=0.5)
    assert run.pods.order[-1] == "wf[0].a(2)"


# ------------------------------------------------------------------------------------------------- on exit

EXIT = "  onExit: bye\n" + steps(["name: a"], extra="  - name: bye\n    container: {image: busybox,"
                                 " args: ['{{workflow.status}}', '{{workflow.failures}}']}\n")


@pytest.mark.parametrize("end", ["Succeeded", "Failed"])
def test_on_exit_runs_after_the_entrypoint_with_its_status(end: str) -> None:
    run = Run(EXIT).step()
    assert run.exit is None and run.pods.order == ["wf[0].a"]
    run.step({"wf[0].a": ok() if end == "Succeeded" else failed()})
    assert run.root["phase"] == end and run.pods.order[-1] == "wf.onExit"
    assert run.exit is not None and (run.exit["id"], run.exit["displayName"], run.exit["type"]) == \
        (nid("wf.onExit"), "wf.onExit", "Pod")
    status, failures = run.args("wf.onExit")
    assert status == end
    if end == "Succeeded":
        assert failures == "null"  # Argo marshals its nil slice of failures
    else:
        assert sorted(f["displayName"] for f in json.loads(failures)) == ["[0]", "a", "wf"]  # every failed node
    run.step({"wf.onExit": ok()})
    assert run.exit is not None and run.exit["phase"] == "Succeeded"


def test_on_exit_steps_see_the_workflow_status_in_when() -> None:
    spec = EXIT.replace("  - name: bye\n", "  - name: bye\n    steps:\n"
                        "    - - {name: cry, template: echo, when: '{{workflow.status}} != Succeeded'}\n"
                        "      - {name: cheer, template: echo, when: '{{workflow.status}} == Succeeded'}\n"
                        "  - name: unused\n")
    run = Run(spec).step().step({"wf[0].a": failed()})
    assert run.pods.order[-1] == "wf.onExit[0].cry" and run.phase("wf.onExit[0].cheer") == "Skipped"
    assert run.exit is not None and run.exit["type"] == "Steps"
    assert run.n("wf.onExit[0].cry")["boundaryID"] == nid("wf.onExit")
    run.step({"wf.onExit[0].cry": ok()})
    assert run.exit["phase"] == "Succeeded" and run.root["phase"] == "Failed"


def test_on_exit_steps_pass_the_workflow_status_to_the_templates_they_call() -> None:
    spec = EXIT.replace("  - name: bye\n", "  - name: bye\n    steps:\n    - - {name: notify, template: tell}\n"
                        "  - name: tell\n")
    run = Run(spec).step().step({"wf[0].a": failed()})
    assert run.pods.order[-1] == "wf.onExit[0].notify"
    assert run.args("wf.onExit[0].notify")[0] == "Failed"


# ------------------------------------------------------------------------------------------ errors, inputs

def test_an_unresolved_input_reference_is_an_error_naming_it() -> None:
    """Refused at apply (api.workflow_refs); the walker still fails the step, naming it, should one get by."""
    run = Run(steps(["name: a, template: odd"],
                    extra="  - name: odd\n    container: {image: busybox, args: ['{{inputs.parameters.x}}']}\n"
                          "    inputs: {parameters: [{name: x, value: '1'}]}\n"))
    run.wf["spec"]["templates"][2]["container"]["args"] = ["{{inputs.parameters.nope}}"]
    node = run.step().n("wf[0].a")
    assert node["phase"] == "Error" and "inputs.parameters.nope" in node["message"]
    assert run.pods.order == [] and run.root["phase"] == "Failed"


ARTIFACTS = steps(
    ["name: make, template: make"],
    ["name: use, template: use, arguments: {artifacts: [{name: in, from: '{{steps.make.outputs.artifacts.out}}'}]}"],
    extra="  - name: make\n    outputs: {artifacts: [{name: out, path: /tmp/out, optional: true}]}\n"
          "    container: {image: busybox, args: [x]}\n"
          "  - name: use\n    inputs: {artifacts: [{name: in, path: /tmp/in}]}\n"
          "    container: {image: busybox, args: ['{{inputs.artifacts.in.path}}']}\n")


def test_an_input_artifact_is_passed_from_the_step_that_made_it() -> None:
    made = ok()
    made["outputs"]["artifacts"] = [{"name": "out", "path": "/tmp/out", "location": "/shared/wf/make/out"}]
    run = Run(ARTIFACTS).step().step({"wf[0].make": made})
    assert run.args("wf[1].use") == ["/tmp/in"]
    assert run.pods.started[nid("wf[1].use")]["artifacts"] == [
        {"name": "in", "path": "/tmp/in", "from": "/shared/wf/make/out", "optional": False}]


@pytest.mark.parametrize("made", [[{"name": "out", "path": "/tmp/out", "location": ""}], []])  # optional, not made
def test_a_missing_input_artifact_source_is_an_error(made: list[dict[str, str]]) -> None:
    status = ok()
    status["outputs"]["artifacts"] = made
    run = Run(ARTIFACTS).step().step({"wf[0].make": status})
    node = run.n("wf[1].use")
    assert node["phase"] == "Error" and nid("wf[1].use") not in run.pods.started
    assert ("artifact in " if made else "{{steps.make.outputs.artifacts.out}}") in node["message"]
    assert run.root["phase"] == "Failed"


TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)  # argv: no NUL


def yaml_quoted(text: str) -> str:
    """`text` as a YAML double-quoted scalar that PyYAML reads back exactly (astral characters stay raw)."""
    escape = r"[^ !#-\[\]-~\xa0-\u2027\u202a-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"  # " \\ and non-printables
    return '"' + re.sub(escape, lambda m: f"\\u{ord(m[0]):04x}", text) + '"'


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=TEXT, other=TEXT)
def test_parameters_reach_the_container_byte_for_byte(value: str, other: str) -> None:
    value = f"{value}{{{{workflow.name}}}}$(rm -rf /);'\"`{other}"  # `{{` in a value is never substituted again
    spec = (f"  arguments: {{parameters: [{{name: p, value: {yaml_quoted(value)}}}]}}\n"
            + steps(["name: a, template: emit, xv: '{{workflow.parameters.p}}'"],
                    ["name: b, template: emit, xv: '{{steps.a.outputs.parameters.v}}'"],
                    ["name: c, withItems: ['{{steps.b.outputs.parameters.v}}'], xv: '{{item}}'"], extra=EMIT))
    run = Run(spec).step()
    assert run.args("wf[0].a") == [value]
    run.step({"wf[0].a": ok(v=value)})
    assert run.args("wf[1].b") == [value]
    run.step({"wf[1].b": ok(v=value)})
    assert run.args(run.pods.order[-1]) == [value]


# ------------------------------------------------------------------------------------------------- restarts

def test_a_restarted_controller_never_starts_a_pod_twice() -> None:
    spec = steps(["name: a, template: flaky, withItems: [1, 2]", "name: d, template: graph"], ["name: c"],
                 extra="  - name: flaky\n    retryStrategy: {limit: 2, retryPolicy: Always}\n"
                       "    container: {image: busybox, args: [x]}\n"
                       "  - name: graph\n    dag:\n      tasks:\n      - {name: A, template: echo}\n"
                       "      - {name: B, template: echo, depends: A, withItems: [p, q]}\n")
    run = Run(spec, reload=True)
    outcome = {"wf[0].a(0:1)(0)": failed(), "wf[0].a(1:2)(0)": ERROR}
    for _ in range(30):
        run.step()
        run.step(seconds=0)  # the same pass again, as after a crash before anything changed
        for name in run.pods.order:
            if nid(name) not in run.pods.status:
                run.pods.status[nid(name)] = outcome.get(name, ok())
        if run.root["phase"] != "Running":
            break
    assert run.root["phase"] == "Succeeded"
    assert max(Counter(run.pods.order).values()) == 1 and len(run.pods.started) == len(run.pods.order)
    assert sorted(run.pods.order) == sorted([
        "wf[0].a(0:1)(0)", "wf[0].a(0:1)(1)", "wf[0].a(1:2)(0)", "wf[0].a(1:2)(1)",
        "wf[0].d.A", "wf[0].d.B(0:p)", "wf[0].d.B(1:q)", "wf[1].c"])


def test_loops_of_loops_stop_at_the_node_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("podline.controller.argo_nodes.MAX_NODES", 50)
    run = Run("  entrypoint: outer\n  templates:\n"
              "  - name: outer\n    steps:\n    - - {name: o, template: inner, withSequence: {count: '10'}}\n"
              "  - name: inner\n    steps:\n    - - {name: i, template: echo, withSequence: {count: '10'}}\n" + ECHO)
    with pytest.raises(TooManyNodes, match="more than 50 nodes"):
        run.step()
    assert len(run.nodes) == 50


def test_the_pod_of_a_workflow_that_is_one_container_is_named_after_the_workflow() -> None:
    assert pod_name("hello-world", "whalesay", "hello-world") == "hello-world"
    assert pod_name("hello-world", "Whalesay", "hello-world-2104527893") == "hello-world-whalesay-2104527893"


def test_a_steps_inputs_cannot_go_into_a_read_only_volume() -> None:
    from podline.plan.workflow_pod import StepPodError, step_pod

    wf = {"metadata": {"name": "wf"}, "spec": {"volumes": [{"name": "ref", "persistentVolumeClaim": {
        "claimName": "reference", "readOnly": True}}]}}
    template = {"name": "t", "container": {"image": "busybox", "volumeMounts": [{"name": "ref", "mountPath": "/ref"}]}}
    with pytest.raises(StepPodError, match="read-only volume"):
        step_pod(wf, {"id": "wf-1", "name": "wf.t"}, template, [{"name": "a", "path": "/ref/a", "raw": "x"}], "/art")
    step_pod(wf, {"id": "wf-1", "name": "wf.t"}, template, [{"name": "a", "path": "/in/a", "raw": "x"}], "/art")


@pytest.mark.parametrize(("reason", "phase"), [("NodeLost", "Error"), ("Preempted", "Error"), ("Cancelled", "Error"),
                                               ("RunnerLost", "Error"), ("DeadlineExceeded", "Failed"),
                                               (None, "Failed")])
def test_a_pod_ended_from_outside_is_an_error_not_a_failure(reason: str | None, phase: str) -> None:
    """Its containers' 137 is the kill's: Argo's Error, which `retryPolicy: OnError` retries."""
    from podline.controller.argo_scope import pod_failure
    status = {"phase": "Failed", "message": "the job ended with its node",
              "containerStatuses": [{"state": {"terminated": {"reason": "Error", "exitCode": 137}}}]}
    if reason:
        status["reason"] = reason
    assert pod_failure(status)[0] == phase


@pytest.mark.parametrize(("main", "sidecar", "expected"), [
    ({"reason": "OOMKilled", "exitCode": 137, "message": "its processes held more than its memory limit 64Mi"}, None,
     ("Failed", "OOMKilled (exit code 137): its processes held more than its memory limit 64Mi")),
    ({"reason": "StartError", "exitCode": 128, "message": "exec: no-such: not found"}, None,
     ("Failed", "StartError (exit code 128): exec: no-such: not found")),
    ({"reason": "Error", "exitCode": 3}, {"reason": "Error", "exitCode": 143}, ("Failed", "Error (exit code 3)")),
    ({"reason": "Completed", "exitCode": 0}, {"reason": "Error", "exitCode": 2}, ("Failed", "Error (exit code 2)")),
    ({"reason": "Completed", "exitCode": 0}, {"reason": "Error", "exitCode": 137}, ("Error", "the pod failed")),
])
def test_a_pods_failure_is_argos_failed_whatever_ended_its_container(
        main: dict[str, Any], sidecar: dict[str, Any] | None, expected: tuple[str, str]) -> None:
    """As Argo's inferFailedReason (helper-77: OOMKilled and StartError were Error, so OnFailure retries and
    continueOn.failed missed them): a container's non-zero exit is Failed, the main one's first; a sidecar
    stopped (137/143) by the step's end is no failure."""
    from podline.controller.argo_scope import pod_failure
    status: dict[str, Any] = {"phase": "Failed", "containerStatuses": [{"name": "main", "state": {"terminated": main}}]}
    if sidecar:
        status["initContainerStatuses"] = [{"name": "db", "state": {"terminated": sidecar}}]
    assert pod_failure(status) == expected


def test_backoff_is_bounded_by_its_cap_or_a_day_however_many_attempts_failed() -> None:
    """factor ** attempts outgrows any float (the walk once crashed with OverflowError at attempt 104)."""
    run = Run(retrying("{limit: 3, retryPolicy: Always, backoff: {duration: '1', factor: '1000'}}")).step()
    walker = Walker(run.wf, run.nodes, run.pods, run.now, rfc3339)
    last = {"finishedAt": rfc3339(run.now)}
    assert not walker._backoff_over({"backoff": {"duration": "1", "factor": 1000}}, last, 150)
    assert walker.wake == pytest.approx(run.now + 86_400, abs=1e-3)
    walker.wake = None
    assert not walker._backoff_over({"backoff": {"duration": "1", "factor": 1000, "cap": "1m"}}, last, 150)
    assert walker.wake == pytest.approx(run.now + 60, abs=1e-3)


def test_a_workflow_hook_and_a_step_see_the_workflow_status_while_it_runs() -> None:
    """Argo's globals carry the workflow's phase all along (helper-77: a `running` hook's template could not
    read {{workflow.status}}; its node ended Error "unresolved reference" and failed the workflow)."""
    run = Run("  entrypoint: main\n"
              "  hooks:\n    running: {expression: workflow.status == \"Running\", template: note}\n"
              "  templates:\n"
              "  - name: main\n    container: {image: busybox, args: ['main sees {{workflow.status}}']}\n"
              "  - name: note\n    container: {image: busybox, args: ['workflow is {{workflow.status}}']}\n").step()
    assert run.args("wf") == ["main sees Running"]
    assert run.args("wf.hooks.running") == ["workflow is Running"]
    run.step({"wf": ok(), "wf.hooks.running": ok()})
    assert run.root["phase"] == "Succeeded" and run.phase("wf.hooks.running") == "Succeeded"


def test_a_workflow_hook_on_failure_sees_failed_in_its_template_too() -> None:
    """helper-81: the expression saw Failed, the template's {{workflow.status}} said Running."""
    run = Run("  entrypoint: main\n"
              "  hooks:\n    failed: {expression: workflow.status == \"Failed\", template: note}\n"
              "  templates:\n"
              "  - name: main\n    container: {image: busybox, args: [main]}\n"
              "  - name: note\n    container: {image: busybox, args: ['workflow is {{workflow.status}}']}\n").step()
    run.step({"wf": failed()})
    assert run.args("wf.hooks.failed") == ["workflow is Failed"]
