"""Argo's workflow-wide template settings and suspend templates on the real local backend:
`spec.templateDefaults` (merged under every template's own fields, a type's fields only into templates of that
type), `spec.retryStrategy` (every template's that has none), and `suspend: {duration}` between steps.
"""

from __future__ import annotations

from pathlib import Path

from podline.runtime.files import parse_rfc3339
from tests.conftest import Cli
from tests.integration.test_workflows_local import by_display, run


def test_template_defaults_and_a_workflow_retry_strategy_reach_every_template(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "tries"
    wf = run(cli, f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: defaults}}
spec:
  entrypoint: main
  retryStrategy: {{limit: 2}}
  templateDefaults:
    container:
      env: [{{name: GREETING, value: hello from the defaults}}, {{name: WHO, value: nobody}}]
  templates:
  - name: main
    steps:
    - - {{name: flaky, template: flaky}}
      - {{name: greet, template: greet}}
  - name: flaky
    container:
      image: busybox
      command: [sh, -c, 'n=$(cat {marker} 2>/dev/null || echo 0); echo $((n+1)) > {marker}; [ $n -ge 1 ]']
  - name: greet
    retryStrategy: {{limit: 0}}
    container:
      image: busybox
      command: [sh, -c, 'echo "$GREETING, $WHO"']
      env: [{{name: WHO, value: the template}}]
""")
    nodes = by_display(wf)
    flaky = nodes["flaky"]
    assert flaky["type"] == "Retry"  # the workflow's retryStrategy: one failure, then success
    assert [wf["status"]["nodes"][c]["phase"] for c in flaky["children"]] == ["Failed", "Succeeded"]
    assert marker.read_text().strip() == "2"
    # the defaults' env merged by name under the template's own: its WHO wins, GREETING comes from the defaults
    greet = wf["status"]["nodes"][nodes["greet"]["children"][0]]
    assert greet["outputs"]["result"] == "hello from the defaults, the template"
    assert nodes["defaults"]["type"] == "Retry"  # as in Argo, the steps template is wrapped too
    assert "container" not in wf["spec"]["templates"][0]  # a steps template never takes container defaults


def test_a_suspend_template_pauses_between_steps_for_its_duration(cli: Cli) -> None:
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: pause}
spec:
  entrypoint: main
  arguments: {parameters: [{name: wait, value: 2s}]}
  templates:
  - name: main
    steps:
    - - {name: before, template: say}
    - - {name: wait, template: wait}
    - - {name: after, template: say}
  - name: wait
    suspend: {duration: "{{workflow.parameters.wait}}"}
  - name: say
    container: {image: busybox, command: [date, +%s.%N]}
""")
    nodes = by_display(wf)
    wait = nodes["wait"]
    assert wait["type"] == "Suspend" and wait["phase"] == "Succeeded"
    assert parse_rfc3339(wait["finishedAt"]) - parse_rfc3339(wait["startedAt"]) >= 2.0
    before, after = (float(nodes[n]["outputs"]["result"]) for n in ("before", "after"))
    assert after - before >= 2.0


def test_a_dag_target_runs_only_the_named_tasks_and_what_they_depend_on(cli: Cli) -> None:
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: targets}
spec:
  entrypoint: main
  arguments: {parameters: [{name: target, value: "c e"}]}
  templates:
  - name: main
    dag:
      target: "{{workflow.parameters.target}}"
      tasks:
      - {name: a, template: say}
      - {name: b, template: say, depends: a}
      - {name: c, template: say, depends: a}
      - {name: d, template: say, depends: b && c}
      - {name: e, template: say}
  - name: say
    container: {image: busybox, command: [echo, ran]}
""")
    nodes = by_display(wf)
    assert sorted(n for n in nodes if n != "targets") == ["a", "c", "e"]  # b and d are never created, as in Argo
    assert all(nodes[n]["phase"] == "Succeeded" for n in "ace")


def test_a_fail_fast_steps_template_starts_no_more_items_after_a_failure(cli: Cli, tmp_path: Path) -> None:
    """Argo's loops-arbitrary-sequential-steps: items one at a time (parallelism 1); after the first failure
    the items not started yet never run."""
    ran = tmp_path / "ran"
    wf = run(cli, f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: fast}}
spec:
  entrypoint: main
  templates:
  - name: main
    parallelism: 1
    failFast: true
    steps:
    - - name: item
        template: item
        arguments: {{parameters: [{{name: n, value: "{{{{item}}}}"}}]}}
        withItems: [1, 2, 3, 4, 5]
  - name: item
    inputs: {{parameters: [{{name: n}}]}}
    container:
      image: busybox
      command: [sh, -c, 'echo $0 >> {ran}; [ $0 -ne 3 ]', "{{{{inputs.parameters.n}}}}"]
""", expect="Failed")
    assert ran.read_text().split() == ["1", "2", "3"]
    nodes = by_display(wf)
    assert [nodes[f"item({i}:{i + 1})"]["phase"] for i in range(5)] == ["Succeeded", "Succeeded", "Failed",
                                                                        "Omitted", "Omitted"]


def test_a_timeout_from_a_parameter_stops_its_step(cli: Cli) -> None:
    """Argo's dag-task-level-timeout: `timeout: "{{inputs.parameters.timeout}}"`."""
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: timed}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: quick, template: sleep, arguments: {parameters: [{name: timeout, value: 20s}]}}
      - {name: slow, template: sleep, arguments: {parameters: [{name: timeout, value: 1s}]}}
  - name: sleep
    timeout: "{{inputs.parameters.timeout}}"
    inputs: {parameters: [{name: timeout}]}
    container: {image: busybox, command: [sleep, "3"]}
""", expect="Failed", timeout=60)
    nodes = by_display(wf)
    assert nodes["quick"]["phase"] == "Succeeded" and nodes["slow"]["phase"] == "Failed"
    assert "deadline" in nodes["slow"]["message"].lower(), nodes["slow"]


def test_inline_templates_run_in_steps_and_dags(cli: Cli) -> None:
    """Argo's dag-inline and steps-inline examples: a task's or step's own template, with its inputs."""
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: inline}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - name: a
        inline: {container: {image: busybox, command: [echo, from a]}}
      - name: b
        depends: a
        arguments: {parameters: [{name: got, value: "{{tasks.a.outputs.result}}"}]}
        inline:
          inputs: {parameters: [{name: got}]}
          steps:
          - - name: inner
              arguments: {parameters: [{name: v, value: "{{inputs.parameters.got}}"}]}
              inline:
                inputs: {parameters: [{name: v}]}
                container: {image: busybox, command: [sh, -c, 'echo "inner saw $0"', "{{inputs.parameters.v}}"]}
""")
    nodes = by_display(wf)
    assert nodes["a"]["outputs"]["result"] == "from a"
    assert nodes["inner"]["outputs"]["result"] == "inner saw from a"
    assert nodes["b"]["type"] == "Steps" and "templateName" not in nodes["a"]


def test_an_inline_steps_template_keeps_its_parallelism(cli: Cli, tmp_path: Path) -> None:
    log = tmp_path / "log"
    run(cli, f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: inline-one-at-a-time}}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - name: loop
        inline:
          parallelism: 1
          steps:
          - - name: item
              withItems: [a, b, c]
              arguments: {{parameters: [{{name: x, value: "{{{{item}}}}"}}]}}
              inline:
                inputs: {{parameters: [{{name: x}}]}}
                container:
                  image: busybox
                  command:
                  - sh
                  - -c
                  - 'echo "start $(date +%s.%N)" >> {log}; sleep 0.5; echo "end $(date +%s.%N)" >> {log}'
""")
    times = [(line.split()[0], float(line.split()[1])) for line in log.read_text().splitlines()]
    assert [what for what, _ in times] == ["start", "end"] * 3  # one after another, never two at once


def test_a_blank_dag_target_runs_every_task_and_the_steps_after_it(cli: Cli) -> None:
    """A target from a parameter left empty (a natural default) means no target, as in Argo."""
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: blank-target}
spec:
  entrypoint: main
  arguments: {parameters: [{name: t, value: ""}]}
  templates:
  - name: main
    steps:
    - - {name: d, template: d}
    - - {name: after, template: say}
  - name: d
    dag:
      target: "{{workflow.parameters.t}}"
      tasks: [{name: x, template: say}, {name: y, template: say, depends: x}]
  - name: say
    container: {image: busybox, command: [echo, ran]}
""")
    nodes = by_display(wf)
    assert all(nodes[n]["phase"] == "Succeeded" for n in ("x", "y", "after"))


def test_a_global_output_of_an_inline_template_reaches_later_steps(cli: Cli) -> None:
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: inline-global}
spec:
  entrypoint: main
  onExit: report
  templates:
  - name: main
    steps:
    - - name: make
        inline:
          outputs: {parameters: [{name: v, globalName: made, valueFrom: {path: /out/v}}]}
          container: {image: busybox, command: [sh, -c, 'printf 42 > /out/v']}
    - - {name: wait, template: wait}
    - - {name: use, template: use}
  - name: wait
    suspend: {duration: "1s"}
  - name: use
    container: {image: busybox, command: [echo, "got {{workflow.outputs.parameters.made}}"]}
  - name: report
    container: {image: busybox, command: [echo, "exit saw {{workflow.outputs.parameters.made}}"]}
""")
    nodes = by_display(wf)
    assert nodes["use"]["outputs"]["result"] == "got 42"
    assert nodes["inline-global.onExit"]["outputs"]["result"] == "exit saw 42"
    assert wf["status"]["outputs"] == {"parameters": [{"name": "made", "value": "42"}]}
