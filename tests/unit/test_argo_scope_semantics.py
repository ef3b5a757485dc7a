"""Argo's scoping rules that the walker once got wrong, each checked against Argo's controller: a template's own
input `value`/`default` is substituted with the globals (ProcessArgs); `{{workflow.outputs.parameters.X}}` reaches
the step or task right after the one that exported it; a steps/DAG template offers `{{inputs.artifacts.X}}` to its
children (createScope); an optional argument artifact that names nothing is left out; a steps/DAG template's
outputs take `valueFrom.default` and leave out optional artifacts (getTemplateOutputsFromScope); DAG tasks wait
for the exit hooks of the tasks they depend on (CheckAllHooksFullfilled); loop outputs aggregate only the items
that succeeded (processAggregateNodeOutputs); a fail-fast DAG stopped by an Errored task is Error.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from podline.controller.argo_scope import call_arguments, outputs_scope, resolve_inputs, template_outputs
from podline.plan import argo_expr as ex
from tests.unit.test_argo_walker import ERROR, Run, dag, failed, nid, ok, steps

GEN = ("  - name: gen\n    outputs: {parameters: [{name: p, globalName: g, valueFrom: {path: /tmp/p}}]}\n"
       "    container: {image: busybox, args: [gen]}\n")
CONSUME = ('  - name: consume\n    inputs: {parameters: [{name: a, value: "{{workflow.outputs.parameters.g}}"},'
           ' {name: b, default: "{{workflow.name}}-{{workflow.parameters.w}}"}]}\n'
           '    container: {image: busybox, args: ["{{inputs.parameters.a}}", "{{inputs.parameters.b}}"]}\n')


# ------------------------------------------------------------------------------------- inputs and globals

def test_a_templates_own_input_value_and_default_are_substituted_with_the_globals() -> None:
    template = {"name": "t", "inputs": {"parameters": [
        {"name": "a", "value": "{{workflow.name}}-x"}, {"name": "b", "default": "{{workflow.outputs.parameters.g}}"},
        {"name": "c", "default": "{{workflow.outputs.parameters.later}}"}, {"name": "d", "default": "-"}]}}
    node: dict[str, Any] = {}
    given = {"parameters": {"d": "{{workflow.name}}"}}  # a caller's value was substituted where it was written
    scope, _ = resolve_inputs(template, given, node, {"workflow.name": "wf", "workflow.outputs.parameters.g": "G"})
    assert [scope[f"inputs.parameters.{n}"] for n in "abcd"] == \
        ["wf-x", "G", "{{workflow.outputs.parameters.later}}", "{{workflow.name}}"]  # Argo leaves an unknown name
    assert node["inputs"]["parameters"][0] == {"name": "a", "value": "wf-x"}


def test_exported_globals_reach_the_next_step_and_a_templates_own_inputs() -> None:
    spec = "  arguments: {parameters: [{name: w, value: W}]}\n" + steps(
        ["name: gen, template: gen"],
        ["name: b, xv: '{{workflow.outputs.parameters.g}}'", "name: c, template: consume"], extra=GEN + CONSUME)
    run = Run(spec).step().step({"wf[0].gen": ok(p="V")})
    assert run.phase("wf[1].b") == "Pending", run.n("wf[1].b").get("message")  # was "unresolved reference"
    assert run.args("wf[1].b") == ["V"] and run.args("wf[1].c") == ["V", "wf-W"]


def test_exported_globals_reach_the_next_task_of_a_dag() -> None:
    run = Run(dag("name: gen, template: gen", "name: b, depends: gen, xv: '{{workflow.outputs.parameters.g}}'",
                  extra=GEN)).step()
    run.step({"wf.gen": ok(p="V")})
    assert run.args("wf.b") == ["V"]


def test_a_global_name_made_with_the_templates_inputs_is_substituted_when_its_step_succeeds() -> None:
    gen = ("  - name: gen\n    inputs: {parameters: [{name: v}]}\n"
           "    outputs: {parameters: [{name: p, globalName: 'g-{{inputs.parameters.v}}',\n"
           "                            valueFrom: {path: /tmp/p}}]}\n"
           "    container: {image: busybox, args: [gen]}\n")
    spec = steps(["name: gen, template: gen, arguments: {parameters: [{name: v, value: x}]}"],
                 ["name: b, xv: '{{workflow.outputs.parameters.g-x}}'"], extra=gen)
    run = Run(spec).step().step({"wf[0].gen": ok(p="V")})
    assert run.args("wf[1].b") == ["V"]


# ------------------------------------------------------------------------------------------------ artifacts

SUB = steps(
    ["name: make, template: make"],
    ["name: sub, template: sub, arguments: {artifacts: [{name: x, from: '{{steps.make.outputs.artifacts.out}}'}]}"],
    extra="  - name: make\n    outputs: {artifacts: [{name: out, path: /tmp/out}, {name: opt, path: /tmp/o, "
          "optional: true}]}\n    container: {image: busybox, args: [x]}\n"
          "  - name: sub\n    inputs: {artifacts: [{name: x}]}\n    dag:\n      tasks:\n"
          "      - {name: use, template: use, arguments: {artifacts: [{name: in, from: '{{inputs.artifacts.x}}'},"
          " {name: o, from: '{{steps.make.outputs.artifacts.opt}}', optional: true}]}}\n"
          "  - name: use\n    inputs: {artifacts: [{name: in, path: /tmp/in},"
          " {name: o, path: /tmp/o, optional: true}]}\n"
          "    container: {image: busybox, args: [y]}\n")


def test_a_dag_passes_its_input_artifact_on_and_leaves_out_an_optional_one_not_made() -> None:
    made = ok()
    made["outputs"]["artifacts"] = [{"name": "out", "path": "/tmp/out", "location": "/shared/wf/make/out"}]
    run = Run(SUB).step().step({"wf[0].make": made})
    assert run.phase("wf[1].sub.use") == "Pending", run.n("wf[1].sub.use").get("message")
    assert run.pods.started[nid("wf[1].sub.use")]["artifacts"] == [
        {"name": "in", "path": "/tmp/in", "from": "/shared/wf/make/out", "optional": False}]


def test_an_optional_argument_artifact_that_names_nothing_is_left_out() -> None:
    call = {"arguments": {"artifacts": [{"name": "o", "from": "{{tasks.a.outputs.artifacts.none}}", "optional": True},
                                        {"name": "r", "raw": {"data": "x"}}]}}
    assert call_arguments(call, {})["artifacts"] == {"r": {"raw": {"data": "x"}}}
    del call["arguments"]["artifacts"][0]["optional"]
    with pytest.raises(ex.ExpressionError, match="tasks.a.outputs.artifacts.none"):
        call_arguments(call, {})


# ----------------------------------------------------------------------------- a steps/DAG template's outputs

def test_template_outputs_take_their_default_and_leave_out_optional_artifacts() -> None:
    template = {"outputs": {
        "parameters": [{"name": "p", "valueFrom": {"parameter": "{{steps.tails.outputs.result}}", "default": "d"}},
                       {"name": "e", "valueFrom": {"expression": "steps.tails.outputs.result", "default": "d2"}},
                       {"name": "ok", "valueFrom": {"parameter": "{{steps.heads.outputs.result}}", "default": "x"}}],
        "artifacts": [{"name": "a", "from": "{{steps.tails.outputs.artifacts.a}}", "optional": True},
                      {"name": "b", "from": "{{steps.heads.outputs.artifacts.b}}"}]}}
    scope = {"steps.heads.outputs.result": "heads", "steps.heads.outputs.artifacts.b": "/shared/b"}
    assert template_outputs(template, scope) == {
        "parameters": [{"name": "p", "value": "d"}, {"name": "e", "value": "d2"}, {"name": "ok", "value": "heads"}],
        "artifacts": [{"name": "b", "location": "/shared/b"}]}
    for kind, broken in (("parameters", {"name": "q", "valueFrom": {"parameter": "{{steps.tails.outputs.result}}"}}),
                         ("artifacts", {"name": "c", "from": "{{steps.tails.outputs.artifacts.c}}"})):
        with pytest.raises(ex.ExpressionError, match="steps.tails"):
            template_outputs({"outputs": {kind: [broken]}}, scope)


# ------------------------------------------------------------------------------------------ loop aggregation

def _item(i: int, phase: str, sq: str | None) -> dict[str, Any]:
    node: dict[str, Any] = {"id": f"n{i}", "name": f"wf[1].fan({i}:{i + 1})", "phase": phase}
    if sq is not None:
        node["outputs"] = {"result": sq, "parameters": [{"name": "sq", "value": sq}], "exitCode": "0"}
    return node


def test_loop_outputs_aggregate_only_the_items_that_succeeded() -> None:
    nodes = [_item(0, "Succeeded", "1"), _item(1, "Failed", "4"), _item(2, "Skipped", None),
             _item(3, "Omitted", None), _item(4, "Succeeded", "16")]
    scope = outputs_scope("steps", "fan", nodes, True)
    assert scope["steps.fan.outputs.parameters.sq"] == '["1","16"]'
    assert scope["steps.fan.outputs.result"] == '["1","16"]'
    assert json.loads(scope["steps.fan.outputs.parameters"]) == [{"sq": "1"}, {"sq": "16"}]
    skipped = outputs_scope("steps", "fan", [_item(0, "Skipped", None)], True)
    assert (skipped["steps.fan.outputs.result"], skipped["steps.fan.outputs.parameters"]) == ("[]", "[]")


# ------------------------------------------------------------------------------------------------- DAG phases

def test_a_dag_task_waits_for_the_exit_hook_of_the_task_it_depends_on() -> None:
    run = Run(dag("name: a, onExit: bye", "name: b, depends: a",
                  extra="  - name: bye\n    container: {image: busybox, args: [bye]}\n")).step()
    run.step({"wf.a": ok()})
    assert run.pods.order == ["wf.a", "wf.a.onExit"]  # b waits for a's exit hook, as in Argo
    run.step({"wf.a.onExit": {"phase": "Running"}})
    assert run.pods.order == ["wf.a", "wf.a.onExit"]
    run.step({"wf.a.onExit": ok()})
    assert run.pods.order == ["wf.a", "wf.a.onExit", "wf.b"]
    run.step({"wf.b": ok()})
    assert run.root["phase"] == "Succeeded"


@pytest.mark.parametrize(("status", "phase"), [(ERROR, "Error"), (failed(), "Failed")])
def test_a_fail_fast_dag_ends_with_the_phase_of_the_task_that_failed_it(status: dict[str, Any], phase: str) -> None:
    run = Run(dag("name: a", "name: c", "name: d, depends: c")).step()
    run.step({"wf.a": status}).step({"wf.c": ok()})
    assert run.phase("wf.d") == "Pending" and run.root["phase"] == "Running"  # ready: it starts, as in Argo
    run.step({"wf.d": ok()})
    assert (run.root["phase"], run.root["message"]) == (phase, "task 'wf.a' failed")
