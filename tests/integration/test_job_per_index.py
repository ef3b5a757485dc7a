"""`backoffLimitPerIndex` on the real local backend: each index retries within its own limit, a failed index
does not stop the others, and the Job fails at the end (FailedIndexes) or at once past maxFailedIndexes."""

from __future__ import annotations

import time

from tests.conftest import Cli, wait_for
from tests.integration.test_jobs_local import job

COUNT_KEY = "batch.kubernetes.io/job-index-failure-count"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"


def _pods_by_index(cli: Cli, name: str) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for pod in cli.json("pods", "-l", f"job-name={name}")["items"]:
        found.setdefault(pod["metadata"]["annotations"][INDEX_KEY], []).append(pod)
    return found


def _failed(cli: Cli, name: str) -> tuple[dict, dict]:
    """The status of a Job once it has failed, and its Failed condition."""
    assert cli.wait(f"job/{name}", "condition=Failed").returncode == 0, cli("describe", "job", name).stdout
    status = cli.json("job", name)["status"]
    return status, next(c for c in status["conditions"] if c["type"] == "Failed")


def test_failed_indexes_retry_on_their_own_and_the_job_fails_once_all_are_done(cli: Cli) -> None:
    cli.apply(job("each", """  completions: 4
  parallelism: 4
  completionMode: Indexed
  backoffLimitPerIndex: 1
  podFailurePolicy:
    rules: [{action: FailIndex, onExitCodes: {operator: In, values: [42]}}]
""", """
      restartPolicy: Never
      containers:
      - name: work
        image: busybox
        command: [sh, -c, 'case $JOB_COMPLETION_INDEX in 1) exit 1;; 3) exit 42;; esac']
"""))
    status, failed = _failed(cli, "each")
    assert (failed["reason"], failed["message"]) == ("FailedIndexes", "Job has failed indexes")
    assert (status["completedIndexes"], status["failedIndexes"]) == ("0,2", "1,3")
    assert (status["succeeded"], status["failed"]) == (2, 3)  # index 1 twice (limit 1), index 3 once (FailIndex)
    pods = _pods_by_index(cli, "each")
    assert sorted(p["metadata"]["annotations"][COUNT_KEY] for p in pods["1"]) == ["0", "1"]
    assert [len(pods[i]) for i in "0123"] == [1, 2, 1, 1]
    described = cli("describe", "job", "each").stdout
    assert "Failed Indexes:" in described and "1,3" in described and "Backoff Limit Per Index: 1\n" in described
    assert cli("get", "jobs", "-o", "wide").stdout.split()[-2:] == ["0,2", "1,3"]  # COMPLETED/FAILED INDEXES
    waited = cli.wait("job/each", "condition=Complete")
    assert waited.returncode == 1 and "can no longer reach condition=Complete (Failed: FailedIndexes)" in waited.stderr


def test_more_failed_indexes_than_allowed_fail_the_job_at_once(cli: Cli) -> None:
    cli.apply(job("few", """  completions: 3
  parallelism: 3
  completionMode: Indexed
  backoffLimitPerIndex: 0
  maxFailedIndexes: 0
""", """
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: work
        image: busybox
        command: [sh, -c, 'if [ $JOB_COMPLETION_INDEX = 0 ]; then exit 1; fi; exec sleep 300']
"""))
    status, failed = _failed(cli, "few")
    assert failed["reason"] == "MaxFailedIndexesExceeded", failed
    assert status["failedIndexes"] == "0" and status["completedIndexes"] == ""
    wait_for(lambda: cli.json("job", "few")["status"]["active"] == 0, timeout=30)  # the sleeping ones stopped
    assert cli.json("job", "few")["status"]["failed"] == 3  # as Kubernetes counts the pods it terminates


def test_max_failed_indexes_may_change_but_the_limit_per_index_may_not(cli: Cli) -> None:
    """As the API server: maxFailedIndexes is mutable, backoffLimitPerIndex immutable (exit 2, field path)."""
    spec = "  completions: 2\n  completionMode: Indexed\n  suspend: true\n  backoffLimitPerIndex: 1\n"
    template = "\n      restartPolicy: Never\n      containers: [{name: w, image: busybox, command: [\"true\"]}]\n"
    cli.apply(job("mut", spec + "  maxFailedIndexes: 1\n", template))
    assert cli.apply(job("mut", spec + "  maxFailedIndexes: 2\n", template)).stdout.strip() == "job/mut configured"
    assert cli.json("job", "mut")["spec"]["maxFailedIndexes"] == 2
    refused = cli("apply", "-f", "-", input=job("mut", spec.replace("PerIndex: 1", "PerIndex: 2"), template),
                  check=False)
    assert refused.returncode == 2 and "(Job/mut): spec.backoffLimitPerIndex: field is immutable" in refused.stderr
    assert cli.json("job", "mut")["spec"]["backoffLimitPerIndex"] == 1  # nothing changed


def test_an_index_whose_failures_are_ignored_is_retried_after_a_back_off(cli: Cli) -> None:
    """Kubernetes counts ignored failures in an index's back-off (and in an annotation): the retries of an index
    that keeps failing that way are spaced out, not made on every controller pass."""
    cli.env["PODLINE_JOB_BACKOFF_SECONDS"] = "1"
    cli.apply(job("ign", """  completions: 1
  completionMode: Indexed
  backoffLimitPerIndex: 0
  podFailurePolicy:
    rules: [{action: Ignore, onExitCodes: {operator: In, values: [5]}}]
""", """
      restartPolicy: Never
      containers: [{name: w, image: busybox, command: [sh, -c, 'exit 5']}]
"""))
    wait_for(lambda: len(_pods_by_index(cli, "ign").get("0", [])) >= 3, timeout=30)  # at 0, 1 s and 3 s
    time.sleep(2.5)  # the next waits 4 s after the third failed; a pod every controller pass would make 2 or 3 more
    pods = _pods_by_index(cli, "ign")["0"]
    ignored = sorted(int(p["metadata"]["annotations"].get("batch.kubernetes.io/job-index-ignored-failure-count", 0))
                     for p in pods)
    assert ignored == [0, 1, 2], ignored
    status = cli.json("job", "ign")["status"]
    assert status["failed"] == 0 and status["failedIndexes"] == ""
