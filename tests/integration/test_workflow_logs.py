"""`logs workflow/W -c STEP` as a pod's container logs behave (helper-77): a step that has not run is exit 1,
and `-f -c STEP` returns once STEP is over, not when the whole workflow is."""

from __future__ import annotations

from tests.conftest import Cli

CHAIN = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: chain}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: first, template: first}
    - - {name: second, template: second}
  - name: first
    container: {image: busybox, command: [sh, -c, "echo first-out; sleep 1.5"]}
  - name: second
    container: {image: busybox, command: [sh, -c, "sleep 3; echo second-out"]}
"""


def test_follow_of_one_step_returns_when_it_is_over_and_a_step_not_run_is_exit_1(cli: Cli) -> None:
    cli.apply(CHAIN)
    early = cli("logs", "workflow/chain", "-c", "second", check=False)
    assert early.returncode == 1 and 'step "second" of workflow chain has not run' in early.stderr, early
    followed = cli("logs", "workflow/chain", "-c", "first", "-f", timeout=60)
    assert [line.split(": ", 1)[1] for line in followed.stdout.splitlines()] == ["first-out"], followed
    assert cli.json("wf", "chain")["status"]["phase"] == "Running"  # second still sleeps: -f did not wait for it
    assert cli.wait("workflow/chain", "phase=Succeeded").returncode == 0
    lines = cli("logs", "workflow/chain", "-c", "second").stdout.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["second-out"]
