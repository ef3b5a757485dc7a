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


def test_a_link_at_a_claims_subpath_does_not_move_the_volume_it_is_held_to(cli: Cli, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    wf = run(cli, f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: subpath}}
spec:
  entrypoint: main
  volumeClaimTemplates: [{{metadata: {{name: data}}}}]
  templates:
  - name: main
    steps:
    - - {{name: plant, template: plant}}
    - - {{name: use, template: use}}
  - name: plant
    container:
      image: busybox
      command: [ln, -s, "{outside}", /data/sub]
      volumeMounts: [{{name: data, mountPath: /data}}]
  - name: use
    inputs: {{artifacts: [{{name: drop, path: /out/dropped, raw: {{data: planted}}}}]}}
    outputs: {{artifacts: [{{name: loot, path: /out/secret.txt}}]}}
    container: {{image: busybox, command: ["true"], volumeMounts: [{{name: data, mountPath: /out, subPath: sub}}]}}
""", expect="Failed")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]  # nothing written through the link
    use = by_display(wf)["use"]
    assert "leads out of its volume" in use["message"] and "artifacts" not in use.get("outputs", {})


def test_a_workflow_claim_never_takes_over_a_claim_it_did_not_make(cli: Cli) -> None:
    claim = cli.home / "shared" / "volumes" / "default" / "data-store"
    claim.mkdir(parents=True)
    (claim / "results.txt").write_text("the user's")
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: data}
spec:
  entrypoint: main
  volumeClaimTemplates: [{metadata: {name: store}}]
  templates:
  - {name: main, container: {image: busybox, command: [ls, /w], volumeMounts: [{name: store, mountPath: /w}]}}
""", expect="Error")
    assert wf["status"]["message"] == "claim data-store already exists and is not this workflow's"
    assert (claim / "results.txt").read_text() == "the user's" and cli.json("pods")["items"] == []


def test_outputs_that_are_no_regular_files_or_hold_a_nul_end_the_workflow(cli: Cli) -> None:
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: odd}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: fifo, template: fifo, continueOn: {error: true}}
      - {name: nul, template: nul}
    - - name: take
        template: take
        arguments: {artifacts: [{name: f, from: "{{steps.nul.outputs.result}}"}]}
  - name: fifo
    outputs: {parameters: [{name: p, valueFrom: {path: /tmp/out.txt}}]}
    container: {image: busybox, command: [mkfifo, /tmp/out.txt]}
  - name: nul
    container: {image: busybox, command: [printf, '/x\\0y']}
  - name: take
    inputs: {artifacts: [{name: f, path: /in/f}]}
    container: {image: busybox, command: ["true"]}
""", expect="Failed", timeout=30)
    nodes = by_display(wf)
    assert nodes["fifo"]["phase"] == "Error" and "not a regular file" in nodes["fifo"]["message"]
    assert "has no source among this workflow's artifacts" in nodes["take"]["message"]
