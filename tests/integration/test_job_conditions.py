"""A Job's interim and final conditions on the real local backend (Kubernetes >= 1.31): a failed Job is
FailureTarget while the pods it stopped still end, Failed once they are gone, so `wait --for=condition=Failed`
returns when nothing of the Job runs any more."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli, wait_for
from tests.integration.test_jobs_local import job


def test_a_failed_job_waits_for_its_stopped_pods_before_it_is_failed(cli: Cli, tmp_path: Path) -> None:
    ended, gate = tmp_path / "slow-ended", tmp_path / "gate"  # the stopped pod ends when the test says so
    cli.apply(job("lingers", "  completions: 2\n  parallelism: 2\n  completionMode: Indexed\n  backoffLimit: 0\n", f"""
      restartPolicy: Never
      terminationGracePeriodSeconds: 60
      containers:
      - name: work
        image: busybox
        command: [sh, -c, "if [ $JOB_COMPLETION_INDEX = 0 ]; then sleep 0.5; exit 3; fi;
                           trap 'until [ -e {gate} ]; do sleep 0.05; done; touch {ended}; exit 143' TERM;
                           while true; do sleep 0.1; done"]
"""))

    def conditions() -> tuple[dict, list[str]]:
        status = cli.json("job", "lingers")["status"]
        return status, [c["type"] for c in status.get("conditions", [])]

    wait_for(lambda: "FailureTarget" in conditions()[1], timeout=60)
    status, kinds = conditions()
    assert kinds == ["FailureTarget"] and not ended.exists(), status  # the slow pod is still in its trap
    assert (status["active"], status["terminating"]) == (0, 1), status
    row = cli("get", "jobs", "lingers").stdout.splitlines()[1].split()
    assert row[:2] == ["lingers", "FailureTarget"], row
    assert cli.wait("job/lingers", "condition=FailureTarget", timeout=10).returncode == 0  # kubectl waits for it
    assert conditions()[1] == ["FailureTarget"]  # still: the stopped pod waits for the gate
    events = cli("describe", "job", "lingers").stdout.split("Events:")[1]
    assert "BackoffLimitExceeded" not in events  # the job controller's event comes with Failed
    gate.touch()
    assert cli.wait("job/lingers", "condition=Failed").returncode == 0
    assert "BackoffLimitExceeded" in cli("describe", "job", "lingers").stdout.split("Events:")[1]
    assert ended.exists()  # Failed came after the stopped pod ended
    status, kinds = conditions()
    assert kinds == ["FailureTarget", "Failed"], status
    assert (status["active"], status["terminating"], status["failed"]) == (0, 0, 2), status
    assert {c["reason"] for c in status["conditions"]} == {"BackoffLimitExceeded"}, status
    assert cli("get", "jobs", "lingers").stdout.splitlines()[1].split()[1] == "Failed"


def test_a_complete_job_says_completions_reached(cli: Cli) -> None:
    cli.apply(job("quick", "", """
      restartPolicy: Never
      containers: [{name: work, image: busybox, command: [sh, -c, "true"]}]
"""))
    assert cli.wait("job/quick", "condition=Complete").returncode == 0
    status = cli.json("job", "quick")["status"]
    assert [(c["type"], c["reason"], c["message"]) for c in status["conditions"]] == [
        ("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
        ("Complete", "CompletionsReached", "Reached expected number of succeeded pods")], status
    assert "Job completed" in cli("describe", "job", "quick").stdout  # the event, as Kubernetes words it


def test_a_success_policy_completes_the_job_and_stops_the_other_indexes(cli: Cli) -> None:
    """Kubernetes >= 1.31: index 0 (a leader, say) succeeding is success; the others, still running, are
    stopped, and the Job is SuccessCriteriaMet then Complete, reason SuccessPolicy (helper-82: ignored)."""
    cli.apply(job("leader", "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n"
                  "  successPolicy: {rules: [{succeededIndexes: '0', succeededCount: 1}]}\n", """
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - {name: work, image: busybox, command: [sh, -c, 'if [ $JOB_COMPLETION_INDEX = 0 ]; then exit 0; fi; sleep 60']}
"""))
    assert cli.wait("job/leader", "condition=Complete", timeout=30).returncode == 0
    status = cli.json("job", "leader")["status"]
    assert [(c["type"], c["reason"], c["message"]) for c in status["conditions"]] == [
        ("SuccessCriteriaMet", "SuccessPolicy", "Matched rules at index 0"),
        ("Complete", "SuccessPolicy", "Matched rules at index 0")], status
    assert status["succeeded"] == 1 and status["completedIndexes"] == "0" and status["active"] == 0, status
    assert status["failed"] == 0, status  # the pods a succeeded Job stopped are no failures (helper-84)
    assert all(p["status"]["phase"] in ("Succeeded", "Failed") for p in cli.json("pods")["items"])
