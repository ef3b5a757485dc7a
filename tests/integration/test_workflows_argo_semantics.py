"""Argo's scoping rules on the real local backend, in one workflow (each was once wrong in podline): exported
`{{workflow.outputs.parameters.X}}` in the step right after and in a template's own input value; a loop's outputs
aggregated over the items that succeeded; a DAG template passing `{{inputs.artifacts.X}}` on, leaving out an
optional argument artifact that was not made, its outputs falling back to `valueFrom.default`; and a DAG task
started only after the exit hook of the task it depends on. Unit tests: tests/unit/test_argo_scope_semantics.py.
"""

from __future__ import annotations

from tests.conftest import Cli
from tests.integration.test_workflows_local import by_display, params, run

SEMANTICS = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: semantics-}
spec:
  entrypoint: main
  arguments: {parameters: [{name: w, value: W}]}
  templates:
  - name: main
    steps:
    - - {name: gen, template: gen}
    - - name: use-global
        template: echo
        arguments: {parameters: [{name: m, value: "{{workflow.outputs.parameters.g}}"}]}
      - {name: own, template: own}
      - name: fan
        template: square
        withItems: [1, 2, 3, 4]
        when: "{{item}} != 3"
        continueOn: {failed: true}
        arguments: {parameters: [{name: n, value: "{{item}}"}]}
    - - name: show
        template: echo
        arguments: {parameters: [{name: m, value: "{{steps.fan.outputs.parameters.sq}} {{steps.fan.outputs.result}}"}]}
      - name: sub
        template: sub
        arguments: {artifacts: [{name: x, from: "{{steps.gen.outputs.artifacts.file}}"}]}
  - name: gen
    outputs:
      parameters: [{name: p, globalName: g, valueFrom: {path: /tmp/p}}]
      artifacts: [{name: file, path: /tmp/f}]
    container: {image: busybox, command: [sh, -c, 'printf G > /tmp/p; printf payload > /tmp/f']}
  - name: echo
    inputs: {parameters: [{name: m}]}
    container: {image: busybox, command: [printf, "%s", "{{inputs.parameters.m}}"]}
  - name: own
    inputs:
      parameters:
      - {name: a, value: "{{workflow.outputs.parameters.g}}"}
      - {name: b, default: "{{workflow.name}}-{{workflow.parameters.w}}"}
    container: {image: busybox, command: [printf, "%s %s", "{{inputs.parameters.a}}", "{{inputs.parameters.b}}"]}
  - name: square
    inputs: {parameters: [{name: n}]}
    outputs: {parameters: [{name: sq, valueFrom: {path: /tmp/sq}}]}
    container:
      image: busybox
      command: [sh, -c, 'echo $(($0*$0)) | tee /tmp/sq; [ $0 != 2 ]', "{{inputs.parameters.n}}"]
  - name: sub
    inputs: {artifacts: [{name: x}]}
    outputs:
      parameters:
      - {name: dflt, valueFrom: {parameter: "{{tasks.never.outputs.result}}", default: fallback}}
      artifacts:
      - {name: maybe, from: "{{tasks.first.outputs.artifacts.maybe}}", optional: true}
    dag:
      tasks:
      - name: first
        template: cat
        onExit: hook
        arguments: {artifacts: [{name: in, from: "{{inputs.artifacts.x}}"}]}
      - name: never
        template: echo
        when: "1 == 2"
        arguments: {parameters: [{name: m, value: x}]}
      - name: second
        template: clock
        depends: first
        arguments: {artifacts: [{name: opt, from: "{{tasks.first.outputs.artifacts.maybe}}", optional: true}]}
  - name: cat
    inputs: {artifacts: [{name: in, path: /tmp/in}]}
    outputs: {artifacts: [{name: maybe, path: /tmp/not-made, optional: true}]}
    container: {image: busybox, command: [cat, /tmp/in]}
  - name: hook
    container: {image: busybox, command: [sh, -c, 'sleep 1; date +%s%N']}
  - name: clock
    inputs: {artifacts: [{name: opt, path: /tmp/opt, optional: true}]}
    container: {image: busybox, command: [sh, -c, 'date +%s%N; test ! -e /tmp/opt']}
"""


def test_globals_loops_dag_artifacts_outputs_and_exit_hooks_follow_argo(cli: Cli) -> None:
    wf = run(cli, SEMANTICS)
    nodes = by_display(wf)
    result = {name: node.get("outputs", {}).get("result") for name, node in nodes.items()}
    assert result["use-global"] == "G"  # the step right after the one that exported it
    assert result["own"] == f"G {wf['metadata']['name']}-W"  # a template's own value/default see the globals
    assert [nodes[f"fan({i}:{i + 1})"]["phase"] for i in range(4)] == ["Succeeded", "Failed", "Skipped", "Succeeded"]
    assert result["show"] == '["1","16"] ["1","16"]'  # only the items that succeeded
    assert result["first"] == "payload"  # from the DAG's own input artifact
    assert nodes["second"]["phase"] == "Succeeded"  # the optional artifact that was not made is left out
    assert int(result["second"]) > int(result["first.onExit"])  # started after first's exit hook ended
    assert params(nodes["sub"]) == {"dflt": "fallback"} and "artifacts" not in nodes["sub"]["outputs"]
