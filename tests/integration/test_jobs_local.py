"""batch/v1 Jobs on the real local backend: Indexed completions, back-off limit, deadline, TTL, delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli, wait_for


def job(name: str, spec: str, template: str) -> str:
    return (f"apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n{spec}"
            f"  template:\n    spec:\n{template}")


def test_indexed_job_gives_each_index_its_own_output(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cli.apply(job("shards", "  completions: 6\n  parallelism: 3\n  completionMode: Indexed\n", f"""
      restartPolicy: Never
      volumes: [{{name: out, hostPath: {{path: {out}}}}}]
      containers:
      - name: work
        image: busybox
        command: [sh, -c, "echo shard $JOB_COMPLETION_INDEX > /out/$(JOB_COMPLETION_INDEX).txt"]
        volumeMounts: [{{name: out, mountPath: /out}}]
"""))
    assert cli.wait("job/shards", "condition=Complete").returncode == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"{i}.txt" for i in range(6)]
    assert {(out / f).read_text() for f in files} == {f"shard {i}\n" for i in range(6)}
    status = cli.json("job", "shards")["status"]
    pods = cli.json("pods", "-l", "job-name=shards")["items"]
    failed = [p["status"] for p in pods if p["status"]["phase"] != "Succeeded"]
    assert status["succeeded"] == 6 and status["failed"] == 0 and status["active"] == 0, failed
    assert status["completedIndexes"] == "0-5"
    beyond = cli("logs", "job/shards", "--shard", "7", check=False)  # "no pods for shard 7 yet" it said
    assert beyond.returncode == 1 and "job shards has no shard 7 (its indexes: 0..5)" in beyond.stderr
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in status["conditions"])
    pods = cli.json("pods", "-l", "job-name=shards")["items"]
    assert len(pods) == 6
    assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert cli("logs", "job/shards", "--shard", "4").stdout == ""
    whole = cli("logs", "job/shards")  # as kubectl: one pod, and which (helper-82: every pod's, one after another)
    assert whole.stderr.startswith("Found 6 pods, using pod/shards-"), whole.stderr
    assert whole.stderr.split("pod/")[1].strip() in {p["metadata"]["name"] for p in pods}
    four = next(p["metadata"]["name"] for p in pods
                if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "4")
    assert cli("logs", four, "--shard", "4").returncode == 0
    other = cli("logs", four, "--shard", "3", check=False)  # a pod's own --shard is checked, not ignored
    assert other.returncode == 1 and f"pod {four} is not shard 3 (it is index 4)" in other.stderr
    table = cli("get", "jobs").stdout.splitlines()[1].split()
    assert table[:3] == ["shards", "Complete", "6/6"]
    # phase=Succeeded on a Job means condition Complete, as kubectl wait does
    assert cli.wait("job/shards", "phase=Succeeded").returncode == 0


def test_parallelism_bounds_concurrent_pods(cli: Cli, tmp_path: Path) -> None:
    log = tmp_path / "log"
    cli.apply(job("bounded", "  completions: 4\n  parallelism: 2\n", f"""
      restartPolicy: Never
      volumes: [{{name: log, hostPath: {{path: {tmp_path}}}}}]
      containers:
      - name: work
        image: busybox
        command: [sh, -c, "echo start >> /log/log; sleep 0.5; echo end >> /log/log"]
        volumeMounts: [{{name: log, mountPath: /log}}]
"""))
    assert cli.wait("job/bounded", "condition=Complete").returncode == 0
    running = peak = 0
    for line in log.read_text().split():
        running += 1 if line == "start" else -1
        peak = max(peak, running)
    assert peak == 2 and log.read_text().count("end") == 4


def test_backoff_limit_fails_the_job(cli: Cli) -> None:
    cli.apply(job("doomed", "  backoffLimit: 2\n", """
      restartPolicy: Never
      containers:
      - {name: work, image: busybox, command: [sh, -c, "exit 7"]}
"""))
    assert cli.wait("job/doomed", "condition=Failed").returncode == 0
    status = cli.json("job", "doomed")["status"]
    assert status["failed"] == 3 and status["succeeded"] == 0
    failed = [c for c in status["conditions"] if c["type"] == "Failed"][0]
    assert failed["reason"] == "BackoffLimitExceeded"
    assert cli.wait("job/doomed", "condition=Complete", timeout=30).returncode == 1
    exits = {p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"]
             for p in cli.json("pods", "-l", "job-name=doomed")["items"]}
    assert exits == {7}


def test_on_failure_restarts_count_against_backoff_limit(cli: Cli) -> None:
    cli.apply(job("restarts", "  backoffLimit: 1\n", """
      restartPolicy: OnFailure
      containers:
      - {name: work, image: busybox, command: [sh, -c, "exit 1"]}
"""))
    assert cli.wait("job/restarts", "condition=Failed").returncode == 0
    assert cli.json("job", "restarts")["status"]["failed"] >= 2
    wait_for(lambda: not cli.json("pods", "-l", "job-name=restarts")["items"])  # active pod was deleted


def test_job_deadline_stops_running_pods(cli: Cli) -> None:
    cli.apply(job("slow", "  activeDeadlineSeconds: 2\n", """
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - {name: work, image: busybox, command: [sleep, "120"]}
"""))
    assert cli.wait("job/slow", "condition=Failed").returncode == 0
    failed = [c for c in cli.json("job", "slow")["status"]["conditions"] if c["type"] == "Failed"][0]
    assert failed["reason"] == "DeadlineExceeded"
    wait_for(lambda: not cli.json("pods", "-l", "job-name=slow")["items"])


def test_ttl_after_finished_deletes_the_job_and_its_pods(cli: Cli) -> None:
    cli.apply(job("brief", "  ttlSecondsAfterFinished: 1\n", """
      restartPolicy: Never
      containers:
      - {name: work, image: busybox, command: ["true"]}
"""))
    wait_for(lambda: cli("get", "job", "brief", check=False).returncode == 1, timeout=30)
    assert cli.json("pods")["items"] == []


def test_delete_job_cancels_its_pods(cli: Cli) -> None:
    cli.apply(job("long", "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n", """
      restartPolicy: Never
      containers:
      - {name: work, image: busybox, command: [sleep, "300"]}
"""))
    wait_for(lambda: cli.json("job", "long")["status"].get("ready") == 3)
    cli("delete", "job", "long")
    assert cli.json("pods")["items"] == []
    assert cli("get", "job", "long", check=False).returncode == 1


def test_pod_failure_policy_fails_the_job_at_once_on_a_listed_exit_code(cli: Cli, tmp_path: Path) -> None:
    """Kubernetes' podFailurePolicy: exit 42 matches FailJob (no retries despite backoffLimit 6); exit 3 matches
    Ignore (retried, not counted); anything else counts."""
    tries = tmp_path / "tries"
    cli.apply(job("policy", """  backoffLimit: 6
  podFailurePolicy:
    rules:
    - action: Ignore
      onExitCodes: {operator: In, values: [3]}
    - action: FailJob
      onExitCodes: {containerName: work, operator: In, values: [42]}
""", f"""
      restartPolicy: Never
      containers:
      - name: work
        image: busybox
        command: [sh, -c, 'echo x >> {tries}; [ $(wc -l < {tries}) = 1 ] && exit 3; exit 42']
"""))
    assert cli.wait("job/policy", "condition=Failed").returncode == 0
    status = cli.json("job", "policy")["status"]
    failed = [c for c in status["conditions"] if c["type"] == "Failed"][0]
    assert failed["reason"] == "PodFailurePolicy" and "FailJob rule at index 1" in failed["message"], failed
    assert tries.read_text() == "x\nx\n", "the ignored failure was retried, the FailJob one was not"
    assert status["failed"] == 1, "the ignored failure does not count"


def test_a_pod_deleted_by_hand_is_judged_by_how_it_ended_under_a_pod_failure_policy(cli: Cli, tmp_path: Path) -> None:
    """With a podFailurePolicy Kubernetes waits for a deleted pod to end and applies the rules to how it ended
    (podReplacementPolicy Failed): SIGTERM's 143 matches Ignore here, so the deletion costs no retry (backoffLimit
    0), and the replacement starts only once the deleted pod has ended."""
    tries = tmp_path / "tries"
    cli.apply(job("held", """  backoffLimit: 0
  podFailurePolicy:
    rules: [{action: Ignore, onExitCodes: {operator: In, values: [143]}}]
""", f"""
      restartPolicy: Never
      terminationGracePeriodSeconds: 5
      containers:
      - name: work
        image: busybox
        command: [sh, -c, 'echo x >> {tries}; [ $(wc -l < {tries}) = 1 ] && exec sleep 300; exit 0']
"""))
    wait_for(lambda: cli.json("job", "held")["status"].get("ready") == 1)
    first = cli.json("pods", "-l", "job-name=held")["items"][0]["metadata"]["name"]
    cli("delete", "pod", first)
    assert cli.wait("job/held", "condition=Complete").returncode == 0, cli.json("job", "held")["status"]
    status = cli.json("job", "held")["status"]
    assert (status["failed"], status["succeeded"], status["terminating"]) == (0, 1, 0), status
    assert tries.read_text() == "x\nx\n"


@pytest.mark.parametrize(("policy", "path", "problem"), [
    ("    rules: [{action: Ignore}]\n", "spec.podFailurePolicy.rules[0]",
     "exactly one of onExitCodes and onPodConditions"),
    ("    rules: [{action: FailJob, onExitCodes: {operator: In, values: [0, 1]}}]\n",
     "spec.podFailurePolicy.rules[0].onExitCodes.values", "0 is not allowed with operator In"),
    ("    rules: [{action: FailIndex, onExitCodes: {operator: In, values: [1]}}]\n",
     "spec.podFailurePolicy.rules[0].action", "FailIndex requires backoffLimitPerIndex"),
    ("    rules: [{action: Count, onExitCodes: {containerName: nope, operator: NotIn, values: [1]}}]\n",
     "spec.podFailurePolicy.rules[0].onExitCodes.containerName", "'nope' is not a container"),
    ("    rules: [{action: Ignore, onExitCodes: {operator: In, values: [143]}}]\n"
     "  podReplacementPolicy: TerminatingOrFailed\n",
     "spec.podReplacementPolicy", "'TerminatingOrFailed' is not supported with podFailurePolicy (only 'Failed')"),
])
def test_bad_pod_failure_policies_are_exit_2(cli: Cli, policy: str, path: str, problem: str) -> None:
    done = cli("apply", "-f", "-", check=False, input=job("bad", f"  podFailurePolicy:\n{policy}", """
      restartPolicy: Never
      containers:
      - {name: work, image: busybox, command: [sh, -c, "exit 1"]}
"""))
    assert done.returncode == 2 and f"Job/bad): {path}: " in done.stderr and problem in done.stderr, done.stderr


def test_pod_failure_policy_needs_restart_policy_never(cli: Cli) -> None:
    done = cli("apply", "-f", "-", check=False, input=job("onfail", """  podFailurePolicy:
    rules: [{action: Ignore, onPodConditions: [{type: DisruptionTarget}]}]
""", """
      restartPolicy: OnFailure
      containers:
      - {name: work, image: busybox, command: [sh, -c, "exit 1"]}
"""))
    assert done.returncode == 2 and "spec.template.spec.restartPolicy: must be Never when podFailurePolicy" in \
        done.stderr, done.stderr
