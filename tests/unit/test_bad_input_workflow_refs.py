"""Bad input once accepted: `{{…}}` placeholders that name nothing in their scope, `when`s and expressions that
cannot parse, literal loops that cannot expand (`api.workflow_refs`). Each failed only when its step was reached,
perhaps after earlier steps ran; Argo's validate step refuses them at submit.

Each refusal goes through `podline apply -f` in process (`inprocess_cli.refused`): exit 2, one line naming the
document, object and exact field path, and nothing stored. The valid forms beside them (Argo's global variables,
loops, placeholders that stand for a piece of a `when`) must still load.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from podline.api.loader import load_text
from podline.store import Store
from tests.unit.inprocess_cli import empty_home, refused, workflow

CALLED = ("  - name: c\n    inputs: {parameters: [{name: x, value: '1'}]}\n"
          "    outputs: {parameters: [{name: out, valueFrom: {path: /tmp/o}}]}\n"
          "    container: {image: busybox, args: ['{{inputs.parameters.x}}']}\n")


def steps(*groups: str, spec: str = "") -> str:
    """A Workflow `w` whose entrypoint `m` runs the step groups given (each a flow list of steps calling `c`)."""
    body = "".join(f"    - {group}\n" for group in groups)
    return workflow(spec, "    steps:\n" + body) + CALLED


def dag(*tasks: str, spec: str = "") -> str:
    """A Workflow `w` whose entrypoint `m` is a DAG of the tasks given (flow mappings calling `c`)."""
    return workflow(spec, "    dag:\n      tasks:\n" + "".join(f"      - {t}\n" for t in tasks)) + CALLED


def x_is(value: str) -> str:
    return f"arguments: {{parameters: [{{name: x, value: '{value}'}}]}}"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    return empty_home(tmp_path, monkeypatch)


# --- names that are not in scope --------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "path", "problem"), [
    (workflow(template="    container: {image: busybox, args: ['{{inputs.parameters.nope}}']}\n"),
     "spec.templates[0].container.args[0]", "{{inputs.parameters.nope}}: template 'm' declares no input parameter "
                                            "'nope'"),
    (workflow(template="    container: {image: busybox, command: [cat, '{{ inputs.artifacts.nope.path }}']}\n"),
     "spec.templates[0].container.command[1]", "template 'm' declares no input artifact 'nope'"),
    (workflow("  arguments: {parameters: [{name: a, value: '1'}]}\n",
              "    container: {image: busybox, env: [{name: E, value: '{{workflow.parameters.nope}}'}]}\n"),
     "spec.templates[0].container.env[0].value", "{{workflow.parameters.nope}}: no parameter 'nope' in "
                                                 "spec.arguments.parameters"),
    (steps("[{name: a, template: c}]", f"[{{name: b, template: c, {x_is('{{steps.zz.outputs.result}}')}}}]"),
     "spec.templates[0].steps[1][0].arguments.parameters[0].value", "no step named 'zz' in template 'm'"),
    (steps(f"[{{name: a, template: c}}, {{name: b, template: c, {x_is('{{steps.a.outputs.result}}')}}}]"),
     "spec.templates[0].steps[0][1].arguments.parameters[0].value", "step 'a' is in the same group"),
    (steps(f"[{{name: a, template: c, {x_is('{{steps.b.outputs.result}}')}}}]", "[{name: b, template: c}]"),
     "spec.templates[0].steps[0][0].arguments.parameters[0].value", "step 'b' runs in a later group (steps[1])"),
    (steps("[{name: a, template: c}]", f"[{{name: b, template: c, {x_is('{{steps.a.outputs.parameters.nope}}')}}}]"),
     "spec.templates[0].steps[1][0].arguments.parameters[0].value",
     "step 'a' calls template 'c', which declares no output parameter 'nope'"),
    (steps("[{name: a, template: c, when: '{{item}} == 1'}]"), "spec.templates[0].steps[0][0].when",
     "{{item}}: step 'a' has no withItems, withParam or withSequence"),
    (dag(f"{{name: a, template: c, {x_is('{{item.k}}')}}}"),
     "spec.templates[0].dag.tasks[0].arguments.parameters[0].value", "task 'a' has no withItems"),
    (dag("{name: a, template: c}", f"{{name: b, template: c, depends: a, {x_is('{{tasks.zz.outputs.result}}')}}}"),
     "spec.templates[0].dag.tasks[1].arguments.parameters[0].value", "no task named 'zz' in template 'm'"),
    (dag("{name: a, template: c}", f"{{name: b, template: c, {x_is('{{tasks.a.outputs.result}}')}}}"),
     "spec.templates[0].dag.tasks[1].arguments.parameters[0].value", "missing dependency 'a' for parameter 'x'"),
    (dag("{name: a, template: c}", "{name: b, template: c, when: '{{tasks.a.status}} == Succeeded'}"),
     "spec.templates[0].dag.tasks[1].when", "this task does not depend on task 'a'"),
    (workflow(template="    container: {image: busybox, args: ['{{steps.a.outputs.result}}']}\n"),
     "spec.templates[0].container.args[0]", "template 'm' is a container template: it has no steps"),
    (steps("[{name: a, template: c}]",
           "[{name: b, inline: {container: {image: busybox, args: ['{{inputs.parameters.x}}']}}}]"),
     "spec.templates[0].steps[1][0].inline.container.args[0]",
     "the inline template of step 'b' declares no input parameter 'x'"),
    (steps("[{name: a, template: c}]", f"[{{name: b, template: c, {x_is('{{steps.a.outputs.exitCode}}')}}}]"),
     "spec.templates[0].steps[1][0].arguments.parameters[0].value",
     "{{steps.a.outputs.exitCode}}: a step has no 'outputs.exitCode' (Argo offers exitCode, finishedAt, "
     "hostNodeName, id, ip, outputs, startedAt, status, outputs.result, outputs.parameters, outputs.artifacts)"),
    (dag("{name: a, template: c}", f"{{name: b, template: c, depends: a, {x_is('{{tasks.a.bogus}}')}}}"),
     "spec.templates[0].dag.tasks[1].arguments.parameters[0].value", "{{tasks.a.bogus}}: a task has no 'bogus'"),
    (workflow(template="    container: {image: busybox, args: ['{{workflow.nosuch}}']}\n"),
     "spec.templates[0].container.args[0]", "{{workflow.nosuch}}: Argo has no variable 'workflow.nosuch'"),
    (workflow(template="    container: {image: busybox, args: ['{{inputs.nosuch}}']}\n"),
     "spec.templates[0].container.args[0]", "{{inputs.nosuch}}: Argo has no variable 'inputs.nosuch'"),
    (workflow(template="    container: {image: busybox, args: ['{{pod.nosuch}}']}\n"),
     "spec.templates[0].container.args[0]", "{{pod.nosuch}}: Argo has no variable 'pod.nosuch'"),
    (workflow(template="    container: {image: busybox, args: ['echo {{workflow.name} {{x']}\n"),
     "spec.templates[0].container.args[0]", "'echo {{workflow.name} {{x': a '{{' has no closing '}}'"),
], ids=["input-parameter", "input-artifact", "workflow-parameter", "unknown-step", "same-group", "later-group",
        "undeclared-output", "item-without-loop-step", "item-without-loop-task", "unknown-task", "not-a-dependency",
        "status-of-not-a-dependency", "steps-in-a-container", "inline-reads-caller-input", "step-output-exit-code",
        "task-field", "workflow-variable", "inputs-variable", "pod-variable", "unclosed"])
def test_a_placeholder_naming_nothing_in_scope_is_refused(store: Store, text: str, path: str, problem: str) -> None:
    refused(store, text, "Workflow/w", path, problem)


# --- expressions and loops that cannot work ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "path", "problem"), [
    (steps("[{name: a, template: c, when: '1 == == ((('}]"), "spec.templates[0].steps[0][0].when",
     "'1 == == (((' does not parse"),
    (steps("[{name: a, template: c, when: '{{workflow.name}} == == x'}]"), "spec.templates[0].steps[0][0].when",
     "does not parse: unexpected '=='"),
    (workflow(template="    container: {image: busybox, args: ['{{= 1 + }}']}\n"),
     "spec.templates[0].container.args[0]", "{{=1 +}} does not parse"),
    (workflow(template="    retryStrategy: {limit: 2, expression: 'lastRetry.status == == \"Error\"'}\n"
                       "    container: {image: busybox}\n"),
     "spec.templates[0].retryStrategy.expression", "does not parse"),
    (workflow("  retryStrategy: {expression: 'lastRetry.exitCode >'}\n"), "spec.retryStrategy.expression",
     "does not parse"),
    (steps("[{name: a, template: c, withParam: 'a, b'}]"), "spec.templates[0].steps[0][0].withParam",
     "withParam value is not a JSON list"),
    (dag("{name: a, template: c, withParam: '{\"k\": 1}'}"), "spec.templates[0].dag.tasks[0].withParam",
     "not a JSON list"),
    (steps("[{name: a, template: c, withSequence: {count: 2, format: 'n%d-%d'}}]"),
     "spec.templates[0].steps[0][0].withSequence.format", "needs exactly one of %d"),
    (steps("[{name: a, template: c, withSequence: {count: 2, format: 'plain'}}]"),
     "spec.templates[0].steps[0][0].withSequence.format", "needs exactly one of %d"),
], ids=["when", "when-beside-placeholder", "expression-placeholder", "retry-expression", "workflow-retry-expression",
        "with-param-text", "with-param-object", "sequence-two-verbs", "sequence-no-verb"])
def test_an_expression_or_loop_that_cannot_work_is_refused(store: Store, text: str, path: str, problem: str) -> None:
    refused(store, text, "Workflow/w", path, problem)


# --- what stays accepted ----------------------------------------------------------------------------------

GLOBALS = ["{{workflow.name}}", "{{workflow.namespace}}", "{{workflow.uid}}", "{{workflow.status}}", "{{pod.name}}",
           "{{retries}}", "{{node.name}}", "{{inputs.parameters}}", "{{workflow.creationTimestamp.Y}}",
           "{{workflow.parameters}}", "{{workflow.parameters.json}}", "{{workflow.labels.app}}",
           "{{workflow.outputs.parameters.g}}", "{{workflow.duration}}", "{{workflow.mainEntrypoint}}",
           "{{outputs.parameters.out.path}}", "{{lastRetry.exitCode}}", "{{ custom }}", "{{=sprig.upper(\"a\")}}",
           "{{= inputs.parameters.x + \"b\" }}", "{{inputs}}", "{{workflow}}", "{{pod}}"]  # bare: Argo leaves them


@pytest.mark.parametrize("text", [
    workflow(template="    container: {image: busybox, args: [" + ", ".join(f"'{g}'" for g in GLOBALS) + "]}\n"),
    steps("[{name: a, template: c, withItems: [1, 2], when: '{{item}} > 1'}]",
          f"[{{name: b, template: c, {x_is('{{steps.a.outputs.parameters.out}}{{steps.name}}')}}}]"),
    steps("[{name: a, template: c}]", "[{name: b, template: c, " + x_is(
        "{{steps.a.exitCode}} {{steps.a.id}} {{steps.a.outputs.parameters}} {{steps.a.hostNodeName}}") + "}]"),
    steps("[{name: a, template: c}]", "[{name: b, template: c, withParam: '{{steps.a.outputs.result}}', "
          "when: \"'{{item.k}}' == 'v' && {{steps.a.status}} == Succeeded\"}]"),
    steps("[{name: a, template: c, withParam: '[1, \"two\", {\"k\": 3}]', when: '{{workflow.name}} {{item}}'}]",
          "[{name: b, template: c, withSequence: {count: 2, format: 'item-%02d'}, when: '5 {{item}} 3'}]"),
    dag("{name: a, template: c}", f"{{name: b, template: c, depends: a, {x_is('{{tasks.a.outputs.result}}')}}}",
        f"{{name: d, template: c, depends: b, when: '{{{{tasks.a.status}}}} == Succeeded', "
        f"{x_is('{{tasks.a.outputs.parameters.out}}')}}}"),
    dag("{name: a, template: c, hooks: {exit: {template: c, arguments: {parameters: [{name: x, value: "
        "'{{tasks.a.status}}'}]}}}}", "{name: b, template: c, when: '{{tasks.a.status}} == Succeeded'}",
        "{name: d, template: c, when: '{{tasks.name}} != x'}"),
    workflow("  arguments: {parameters: [{name: a, value: '1'}]}\n",
             "    inputs: {parameters: [{name: p, value: '{{workflow.parameters.a}}'}]}\n"
             "    retryStrategy: {limit: 2, expression: 'lastRetry.status == \"Error\" && "
             "asInt(lastRetry.exitCode) > 1'}\n"
             "    container: {image: busybox, args: ['{{inputs.parameters.p}}', '{{retries}}']}\n"),
    workflow("  templateDefaults: {inputs: {parameters: [{name: d, value: '1'}]}}\n",
             "    container: {image: busybox, args: ['{{inputs.parameters.d}}']}\n"),
    steps("[{name: a, inline: {inputs: {parameters: [{name: p, value: '1'}]}, container: {image: busybox, args: "
          "['{{inputs.parameters.p}}']}}}]"),
    workflow(template="    steps: [[{name: a, template: c, arguments: {artifacts: [{name: f, optional: true, from: "
                      "'{{steps.gone.outputs.artifacts.f}}'}]}}]]\n    outputs: {parameters: [{name: o, valueFrom: "
                      "{parameter: '{{steps.gone.outputs.result}}', default: none}}]}\n") + CALLED,
], ids=["globals", "loop-items", "step-fields", "with-param-from-a-step", "when-fragments", "dag-dependencies",
        "dag-hooks",
        "own-inputs-and-retries", "template-defaults-inputs", "inline-inputs",
        "default-and-optional"])
def test_valid_placeholders_are_accepted(text: str) -> None:
    assert load_text(text, "ok.yaml")[0].obj.kind == "Workflow"


LIBRARY = """apiVersion: argoproj.io/v1alpha1
kind: {kind}
metadata: {{name: lib}}
spec:
  templates:
  - name: t
    container: {{image: busybox, args: ['{{{{workflow.parameters.from-the-caller}}}}']}}
"""


@pytest.mark.parametrize("kind", ["WorkflowTemplate", "ClusterWorkflowTemplate"])
def test_a_library_may_read_the_parameters_of_the_workflow_made_from_it(kind: str) -> None:
    """As Argo validates a WorkflowTemplate alone: its templates may read parameters the calling Workflow gives."""
    assert load_text(LIBRARY.format(kind=kind), "lib.yaml")[0].obj.kind == kind


def test_a_library_still_refuses_an_undeclared_input(store: Store) -> None:
    text = LIBRARY.format(kind="WorkflowTemplate").replace("workflow.parameters.from-the-caller",
                                                           "inputs.parameters.p")
    refused(store, text, "WorkflowTemplate/lib", "spec.templates[0].container.args[0]",
            "template 't' declares no input parameter 'p'")



FROM_LIBRARY = LIBRARY.format(kind="WorkflowTemplate") + """---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: w}
spec:
  entrypoint: t
  workflowTemplateRef: {name: lib}
  arguments: {parameters: [{name: GIVEN, value: '1'}]}
"""


def test_a_workflow_made_from_a_library_must_give_the_parameters_it_reads(store: Store) -> None:
    """Where the arguments are known (the merged spec), the library's `workflow.parameters` are checked."""
    refused(store, FROM_LIBRARY.replace("GIVEN", "other"), "Workflow/w", "spec.workflowTemplateRef",
            "with WorkflowTemplate 'lib': spec.templates[0].container.args[0]: "
            "{{workflow.parameters.from-the-caller}}: no parameter 'from-the-caller' in spec.arguments.parameters",
            document=2)
    docs = load_text(FROM_LIBRARY.replace("GIVEN", "from-the-caller"), "ok.yaml")
    assert [d.obj.kind for d in docs] == ["WorkflowTemplate", "Workflow"]
