"""Jobs on the real local backend, held to Kubernetes' batch/v1 semantics where they once drifted: suspending
stops the active pods (not failures) and stops the deadline's clock; counts only go up, so deleting pods by hand
neither buys retries past backoffLimit nor re-runs a completed index, and a running pod deleted is a failure;
backoffLimit may be changed on a running Job and takes effect at once."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.conftest import Cli, wait_for
from tests.integration.test_job_scale import INDEX, _pods, job


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), None)


def _wide_columns(cli: Cli, name: str, *columns: str) -> list[str]:
    """Cells of `get job NAME -o wide`, each found under its header (empty cells collapse a plain split)."""
    header, line = cli("get", "job", name, "-o", "wide").stdout.splitlines()[:2]
    return [line[header.index(column):].split()[0] for column in columns]


def _when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_suspending_a_running_job_stops_its_pods_and_resuming_makes_new_ones(cli: Cli) -> None:
    spec = "  completions: 2\n  parallelism: 2\n"
    cli.apply(job("pause", spec, "exec sleep 60"))
    wait_for(lambda: cli.json("job", "pause")["status"].get("ready") == 2, timeout=15)
    first = set(_pods(cli, "pause"))
    started = _when(cli.json("job", "pause")["status"]["startTime"])
    cli.apply(job("pause", spec + "  suspend: true\n", "exec sleep 60"))
    wait_for(lambda: not _pods(cli, "pause"), timeout=10)  # the running pods were stopped and are gone
    status = cli.json("job", "pause")["status"]
    assert (status["active"], status["ready"], status["failed"], status["succeeded"]) == (0, 0, 0, 0), status
    suspended = _condition(status, "Suspended")
    assert suspended is not None and (suspended["status"], suspended["reason"]) == ("True", "JobSuspended")
    assert "startTime" not in status
    assert _wide_columns(cli, "pause", "STATUS", "ACTIVE", "FAILED") == ["Suspended", "0", "0"]
    assert not _pods(cli, "pause"), "a suspended job makes no new pods"
    cli.apply(job("pause", spec + "  suspend: false\n", "exec sleep 60"))
    wait_for(lambda: cli.json("job", "pause")["status"].get("ready") == 2, timeout=15)
    assert not first & set(_pods(cli, "pause")), "resumed with new pods"
    status = cli.json("job", "pause")["status"]
    resumed = _condition(status, "Suspended")
    assert resumed is not None and (resumed["status"], resumed["reason"]) == ("False", "JobResumed"), status
    assert status["failed"] == 0 and not _condition(status, "Failed")
    assert _when(status["startTime"]) > started, "resuming starts the clock again"
    events = cli("describe", "job", "pause").stdout
    assert events.count("SuccessfulDelete") == 2 and "Job suspended" in events and "Job resumed" in events, events


def test_a_job_created_suspended_has_no_start_and_its_deadline_waits(cli: Cli) -> None:
    cli.apply(job("later", "  activeDeadlineSeconds: 3\n  suspend: true\n", "true"))
    assert cli.wait("job/later", "condition=Suspended", timeout=10).returncode == 0
    time.sleep(3.5)  # longer than the deadline
    status = cli.json("job", "later")["status"]
    assert _condition(status, "Suspended")["reason"] == "JobSuspended"  # type: ignore[index]
    assert not _condition(status, "Failed") and "startTime" not in status, status
    assert not _pods(cli, "later")
    assert _wide_columns(cli, "later", "STATUS", "ACTIVE") == ["Suspended", "0"]
    resumed_at = time.time()
    cli.apply(job("later", "  activeDeadlineSeconds: 3\n", "true"))
    assert cli.wait("job/later", "condition=Complete", timeout=20).returncode == 0
    assert cli.wait("job/later", "condition=Suspended=False", timeout=5).returncode == 0
    status = cli.json("job", "later")["status"]
    assert _when(status["startTime"]) >= resumed_at - 0.5, status
    assert _condition(status, "Suspended")["reason"] == "JobResumed"  # type: ignore[index]
    assert (status["succeeded"], status["failed"]) == (1, 0)


def test_deleting_failed_pods_does_not_get_past_the_backoff_limit(cli: Cli) -> None:
    cli.apply(job("doomed", "  backoffLimit: 2\n", "sleep 0.5; exit 1"))
    deleted: set[str] = set()

    def delete_failed_pods() -> bool:
        for name, phase in _pods(cli, "doomed").items():
            if phase == "Failed" and name not in deleted:
                cli("delete", "pod", name)
                deleted.add(name)
        return _condition(cli.json("job", "doomed")["status"], "Failed") is not None

    wait_for(delete_failed_pods, timeout=30)
    assert deleted, "the test deleted failed pods while the job ran"
    status = cli.json("job", "doomed")["status"]
    assert _condition(status, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    assert (status["failed"], status["succeeded"], status["active"]) == (3, 0, 0), status
    assert cli("describe", "job", "doomed").stdout.count("SuccessfulCreate") == 3


def test_deleting_running_pods_counts_them_as_failed(cli: Cli) -> None:
    cli.apply(job("unlucky", "  backoffLimit: 1\n", "sleep 60"))
    deleted: list[str] = []
    for _ in range(2):  # each deletion is a failure, and the second one is past the limit
        running = wait_for(lambda: [n for n, phase in _pods(cli, "unlucky").items()
                                    if phase == "Running" and n not in deleted], timeout=15)
        cli("delete", "pod", running[0])
        deleted.append(running[0])
    assert cli.wait("job/unlucky", "condition=Failed", timeout=20).returncode == 0
    status = cli.json("job", "unlucky")["status"]
    assert _condition(status, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    assert (status["failed"], status["succeeded"], status["active"]) == (2, 0, 0), status


def test_deleting_a_succeeded_indexed_pod_does_not_run_its_index_again(cli: Cli, tmp_path: Path) -> None:
    # index 0 ends at once; index 1 waits for /m/go; each run leaves a line in /m/runs-INDEX
    command = ('echo run >> /m/runs-$JOB_COMPLETION_INDEX; test $JOB_COMPLETION_INDEX = 0 && exit 0; '
               'until test -e /m/go; do sleep 0.1; done')
    cli.apply(job("keep", "  completions: 2\n  parallelism: 2\n  completionMode: Indexed\n", command, tmp_path))

    def index_0_succeeded() -> str | None:
        pods = cli.json("pods", "-l", f"{INDEX}=0")["items"]
        return pods[0]["metadata"]["name"] if pods and pods[0]["status"].get("phase") == "Succeeded" else None

    cli("delete", "pod", wait_for(index_0_succeeded, timeout=15))
    assert cli.json("job", "keep")["status"]["completedIndexes"] == "0"
    (tmp_path / "go").touch()
    assert cli.wait("job/keep", "condition=Complete", timeout=20).returncode == 0
    status = cli.json("job", "keep")["status"]
    assert (status["succeeded"], status["failed"], status["completedIndexes"]) == (2, 0, "0-1"), status
    assert (tmp_path / "runs-0").read_text() == "run\n", "index 0 ran once"
    assert cli.json("pods", "-l", f"{INDEX}=0")["items"] == []


def test_backoff_limit_can_be_lowered_on_a_running_job(cli: Cli) -> None:
    cli.apply(job("patient", "  backoffLimit: 50\n", "exit 1"))
    wait_for(lambda: cli.json("job", "patient")["status"].get("failed", 0) >= 1, timeout=15)
    assert cli.apply(job("patient", "  backoffLimit: 1\n", "exit 1")).stdout.strip() == "job/patient configured"
    assert cli.wait("job/patient", "condition=Failed", timeout=20).returncode == 0
    status = cli.json("job", "patient")["status"]
    assert _condition(status, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    assert 2 <= status["failed"] < 10, status  # the new limit, not 50 (whose back-off would take hours)
    assert f"{'Backoff Limit:':<20}1\n" in cli("describe", "job", "patient").stdout
