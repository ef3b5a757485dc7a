"""Argo's `{{=…}}` expressions on the real local backend: in a container's arguments, in `when`, in `withParam`,
in a step's arguments reading an earlier step's JSON output, and in `valueFrom.expression` (Argo's
conditional-parameters example). The values asserted are what the steps computed from the expressions'
results, never the manifest's text.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli
from tests.integration.test_workflows_local import by_display, params, run

EXPRESSIONS = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: expressions}
spec:
  entrypoint: main
  arguments:
    parameters: [{name: n, value: "20"}, {name: words, value: "alpha; $(touch /tmp/expr-pwned) 'beta' gamma"}]
  templates:
  - name: main
    steps:
    - - name: emit
        template: emit
    - - name: double
        template: echo
        arguments: {parameters: [{name: text, value: "{{=asInt(workflow.parameters.n) * 2 + 2}}"}]}
      - name: pick
        template: echo
        arguments:
          parameters:
          - name: text
            value: >-
              {{=jsonpath(steps.emit.outputs.result, '$.items[1].name') + '/' +
              sprig.upper(sprig.trim('  x  '))}}
      - name: odd
        template: echo
        withParam: "{{=toJson(filter(1..7, # % 2 == 1))}}"
        arguments: {parameters: [{name: text, value: "{{=asInt(item) * asInt(item)}}"}]}
      - name: big
        template: echo
        when: "{{=asInt(workflow.parameters.n) > 10 && len(split(workflow.parameters.words, ' ')) == 5}}"
        arguments: {parameters: [{name: text, value: "{{=split(workflow.parameters.words, ' ')[1]}}"}]}
      - name: small
        template: echo
        when: "{{=asInt(workflow.parameters.n) < 10}}"
        arguments: {parameters: [{name: text, value: small}]}
  - name: emit
    container: {image: busybox, command: [echo, '{"items": [{"name": "first"}, {"name": "second"}]}']}
  - name: echo
    inputs: {parameters: [{name: text}]}
    container: {image: busybox, command: [printf, "%s", "{{inputs.parameters.text}}"]}
"""


def test_expressions_compute_arguments_conditions_and_loops(cli: Cli) -> None:
    nodes = by_display(run(cli, EXPRESSIONS))
    assert nodes["double"]["outputs"]["result"] == "42"
    assert nodes["pick"]["outputs"]["result"] == "second/X"
    squares = sorted(int(n["outputs"]["result"]) for name, n in nodes.items() if name.startswith("odd("))
    assert squares == [1, 9, 25, 49]
    assert nodes["big"]["outputs"]["result"] == "$(touch"  # a word of the parameter, passed as one argument
    assert nodes["small"]["phase"] == "Skipped"
    assert not Path("/tmp/expr-pwned").exists()


CONDITIONAL = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: conditional}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: flip-coin
        template: flip
    - - name: heads
        template: say
        arguments: {parameters: [{name: what, value: it was heads}]}
        when: "{{steps.flip-coin.outputs.result}} == heads"
      - name: tails
        template: say
        arguments: {parameters: [{name: what, value: it was tails}]}
        when: "{{steps.flip-coin.outputs.result}} == tails"
    outputs:
      parameters:
      - name: stepresult
        valueFrom:
          expression: >-
            steps['flip-coin'].outputs.result == 'heads'
            ? steps.heads.outputs.result : steps.tails.outputs.result
  - name: flip
    script: {image: python, command: [sh], source: "echo tails"}
  - name: say
    inputs: {parameters: [{name: what}]}
    container: {image: busybox, command: [printf, "%s", "{{inputs.parameters.what}}"]}
"""


def test_an_output_parameter_from_an_expression_reads_the_step_that_ran(cli: Cli) -> None:
    wf = run(cli, CONDITIONAL)
    nodes = by_display(wf)
    assert nodes["heads"]["phase"] == "Skipped"  # so steps.heads.outputs.result does not exist: the ternary
    assert params(nodes["conditional"]) == {"stepresult": "it was tails"}  # never reads it


def test_an_expression_that_cannot_be_computed_fails_its_step_with_the_reason(cli: Cli) -> None:
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: broken-expression}
spec:
  entrypoint: main
  arguments: {parameters: [{name: n, value: "5"}]}
  templates:
  - name: main
    steps:
    - - name: add
        template: echo
        arguments: {parameters: [{name: text, value: "{{=workflow.parameters.n + 1}}"}]}
  - name: echo
    inputs: {parameters: [{name: text}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.text}}"]}
""", expect="Failed")
    node = by_display(wf)["add"]
    assert node["phase"] == "Error"
    assert node["message"] == "invalid operation: string + int in expression 'workflow.parameters.n + 1'"
    assert not any(p for p in cli.json("pods")["items"])  # nothing ran


def test_a_retry_expression_decides_from_the_last_attempt(cli: Cli, tmp_path: Path) -> None:
    """Argo's retry-conditional: retry while the exit code says "try again" (3), stop at any other failure."""
    marker = tmp_path / "tries"
    wf = run(cli, f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: retry-when}}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {{name: flaky, template: flaky}}
  - name: flaky
    retryStrategy:
      limit: 10
      retryPolicy: Always
      expression: "asInt(lastRetry.exitCode) == 3 && lastRetry.status == 'Failed'"
    container:
      image: busybox
      command:
      - sh
      - -c
      - 'n=$(cat {marker} 2>/dev/null || echo 0); echo $((n+1)) > {marker}; [ $n -lt 2 ] && exit 3; exit 4'
""", expect="Failed")
    flaky = by_display(wf)["flaky"]
    attempts = [wf["status"]["nodes"][c] for c in flaky["children"]]
    assert [a["outputs"]["exitCode"] for a in attempts] == ["3", "3", "4"]  # 3 and 3 retried; 4 not, despite limit 10
    assert marker.read_text().strip() == "3"
    assert (flaky["phase"], flaky["message"]) == ("Failed", "retryStrategy.expression evaluated to false")  # Argo's


def test_a_retry_expression_alone_retries_errors_too_and_sees_retries(cli: Cli) -> None:
    """With an expression and no retryPolicy, Argo retries on any failure, errors included (its policy becomes
    Always); `retries` counts the attempts made before."""
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: retry-errors}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: broken, template: broken}
  - name: broken
    retryStrategy: {limit: 5, expression: "lastRetry.status == 'Error' && asInt(retries) < 2"}
    inputs: {artifacts: [{name: gone, path: /in/gone, http: {url: "http://127.0.0.1:9/refused"}}]}
    container: {image: busybox, command: ["true"]}
""", expect="Failed")
    broken = by_display(wf)["broken"]
    attempts = [wf["status"]["nodes"][c] for c in broken["children"]]
    assert [a["phase"] for a in attempts] == ["Error", "Error", "Error"]  # retries 0 and 1 retried, then no more


def test_lifecycle_hooks_run_once_when_their_expression_holds(cli: Cli) -> None:
    """Argo's life-cycle-hooks examples: hooks on a step (running, success) and on the workflow (running)."""
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: hooks}
spec:
  entrypoint: main
  hooks:
    started: {expression: workflow.status == "Running", template: note,
              arguments: {parameters: [{name: what, value: workflow running}]}}
  templates:
  - name: main
    steps:
    - - name: work
        template: work
        hooks:
          running:
            expression: steps["work"].status == "Running"
            template: note
            arguments: {parameters: [{name: what, value: work is running}]}
          success:
            expression: steps.work.status == "Succeeded"
            template: note
            arguments: {parameters: [{name: what, value: "work made {{steps.work.outputs.result}}"}]}
          failure:
            expression: steps.work.status == "Failed"
            template: note
            arguments: {parameters: [{name: what, value: never}]}
  - name: work
    container: {image: busybox, command: [sh, -c, 'sleep 1.5; echo 42']}
  - name: note
    inputs: {parameters: [{name: what}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.what}}"]}
""")
    nodes = by_display(wf)
    hooks = {name: n["outputs"]["result"] for name, n in nodes.items() if ".hooks." in name}
    assert hooks == {"hooks.hooks.started": "workflow running", "work.hooks.running": "work is running",
                     "work.hooks.success": "work made 42"}, hooks
    assert all(nodes[name]["phase"] == "Succeeded" for name in hooks)


def test_an_output_artifact_from_an_expression_is_the_chosen_childs(cli: Cli) -> None:
    """Argo's conditional-artifacts: a steps template's output artifact chosen by `fromExpression`, passed on."""
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: chosen}
spec:
  entrypoint: outer
  templates:
  - name: outer
    steps:
    - - {name: inner, template: main}
    - - name: show
        template: show
        arguments: {artifacts: [{name: f, from: "{{steps.inner.outputs.artifacts.file}}"}]}
  - name: main
    steps:
    - - {name: pick, template: pick}
    - - {name: left, template: make, when: "{{steps.pick.outputs.result}} == left",
         arguments: {parameters: [{name: text, value: from left}]}}
      - {name: right, template: make, when: "{{steps.pick.outputs.result}} == right",
         arguments: {parameters: [{name: text, value: from right}]}}
    outputs:
      artifacts:
      - name: file
        fromExpression: >-
          steps.pick.outputs.result == 'left' ? steps.left.outputs.artifacts.file : steps.right.outputs.artifacts.file
  - name: pick
    container: {image: busybox, command: [echo, right]}
  - name: make
    inputs: {parameters: [{name: text}]}
    outputs: {artifacts: [{name: file, path: /out/file.txt}]}
    container: {image: busybox, command: [sh, -c, 'printf "%s" "$0" > /out/file.txt', "{{inputs.parameters.text}}"]}
  - name: show
    inputs: {artifacts: [{name: f, path: /in/f.txt}]}
    container: {image: busybox, command: [cat, /in/f.txt]}
""")
    nodes = by_display(wf)
    assert nodes["left"]["phase"] == "Skipped" and nodes["show"]["outputs"]["result"] == "from right"
