"""Workflows that try to reach past their own files, and bounds that keep the controller well: the step
runner works on the host, so nothing a step leaves behind (a symbolic link, a printed path, a `..` in a
substituted path) may lead it to other files; chatty steps, deep recursion and deadlines end cleanly."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli
from tests.integration.test_workflows_local import by_display, run


def test_a_link_planted_by_a_step_is_not_followed_out_of_its_volume(cli: Cli, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    wf = run(cli, f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: planted}}
spec:
  entrypoint: main
  templates:
  - name: main
    outputs: {{parameters: [{{name: stolen, valueFrom: {{path: /out/link}}}}]}}
    container: {{image: busybox, command: [sh, -c, "ln -s {secret} /out/link"]}}
""", expect="Error")
    node = by_display(wf)["planted"]
    assert "leads out of its volume" in node["message"] and "not yours" not in str(wf)


def test_a_path_printed_by_a_step_is_no_artifact_source(cli: Cli, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    wf = run(cli, f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: printed}}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {{name: where, template: where}}
    - - name: take
        template: take
        arguments: {{artifacts: [{{name: f, from: "{{{{steps.where.outputs.result}}}}"}}]}}
  - name: where
    container: {{image: busybox, command: [echo, "{secret}"]}}
  - name: take
    inputs: {{artifacts: [{{name: f, path: /in/f}}]}}
    container: {{image: busybox, command: [cat, /in/f]}}
""", expect="Failed")
    assert "has no source among this workflow's artifacts" in by_display(wf)["take"]["message"]


def test_a_substituted_path_with_dot_dot_is_refused(cli: Cli) -> None:
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: dotdot}
spec:
  entrypoint: main
  arguments: {parameters: [{name: p, value: /tmp/../etc/passwd}]}
  templates:
  - name: main
    inputs: {parameters: [{name: p}]}
    outputs: {parameters: [{name: x, valueFrom: {path: "{{inputs.parameters.p}}"}}]}
    container: {image: busybox, command: ["true"]}
""", expect="Error")
    assert "must be an absolute path without '..'" in by_display(wf)["dotdot"]["message"]


def test_a_chatty_step_keeps_the_end_of_its_stdout_as_its_result(cli: Cli) -> None:
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: chatty}
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: busybox, command: [seq, "1", "100000"]}
""")
    result = by_display(wf)["chatty"]["outputs"]["result"]
    assert result.endswith("\n99999\n100000") and len(result.encode()) <= 256 * 1024


def test_the_exit_handler_runs_after_the_workflow_deadline(cli: Cli) -> None:
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: cleanup}
spec:
  entrypoint: main
  onExit: tidy
  activeDeadlineSeconds: 1
  templates:
  - name: main
    container: {image: busybox, command: [sleep, "60"]}
  - name: tidy
    container: {image: busybox, command: [sh, -c, "sleep 2; echo tidied after {{workflow.status}}"]}
""", expect="Failed")
    assert wf["status"]["message"] == "Max duration limit exceeded"
    assert by_display(wf)["cleanup.onExit"]["outputs"]["result"] == "tidied after Failed"


def test_endless_recursion_ends_in_an_error(cli: Cli) -> None:
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: forever}
spec:
  entrypoint: again
  templates:
  - name: again
    steps:
    - - {name: deeper, template: again}
""", expect="Failed")
    assert "maximum recursion depth exceeded" in str(wf["status"]["nodes"])
