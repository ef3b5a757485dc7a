"""Jobs on the local backend, scaled down and stopped: the excess pods go (highest index first) and come back
later; a failed Job's final status has no active pods; a Job name too long for its pods' label is refused."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli, wait_for

INDEX = "batch.kubernetes.io/job-completion-index"


def job(name: str, spec: str, command: str, volume: Path | None = None) -> str:
    mounts = (f"      volumes: [{{name: m, hostPath: {{path: {volume}}}}}]\n" if volume else "")
    mount = "        volumeMounts: [{name: m, mountPath: /m}]\n" if volume else ""
    return (f"apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n{spec}"
            "  template:\n    spec:\n      restartPolicy: Never\n      terminationGracePeriodSeconds: 1\n"
            f"{mounts}      containers:\n      - name: work\n        image: busybox\n"
            f"        command: [sh, -c, {command!r}]\n{mount}")


def _pods(cli: Cli, name: str) -> dict[str, str]:
    """Pod name → phase of the job's pods."""
    return {p["metadata"]["name"]: p["status"].get("phase", "") for p in
            cli.json("pods", "-l", f"job-name={name}")["items"]}


def test_scaling_a_running_job_down_deletes_the_highest_indexes_which_come_back(cli: Cli, tmp_path: Path) -> None:
    # index 0 runs until the test lets it end; a first attempt of index 1 or 2 sleeps until stopped, the next exits
    command = ('test $JOB_COMPLETION_INDEX = 0 && { until test -e /m/go; do sleep 0.1; done; exit 0; }; '
               'test -e /m/$JOB_COMPLETION_INDEX && exit 0; touch /m/$JOB_COMPLETION_INDEX; exec sleep 60')
    cli.apply(job("wide", "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n", command, tmp_path))
    wait_for(lambda: cli.json("job", "wide")["status"].get("ready") == 3, timeout=15)
    first = cli.json("pods", "-l", f"{INDEX}=0")["items"][0]["metadata"]["name"]
    assert cli("scale", "job/wide", "--parallelism", "1").stdout == "job/wide scaled\n"  # kubectl's word
    wait_for(lambda: list(_pods(cli, "wide")) == [first], timeout=10)  # 1 and 2 deleted, 0 left running
    assert cli.json("job", "wide")["status"]["active"] == 1
    (tmp_path / "go").touch()
    assert cli.wait("job/wide", "condition=Complete", timeout=20).returncode == 0
    status = cli.json("job", "wide")["status"]
    assert (status["succeeded"], status["failed"], status["active"]) == (3, 0, 0)
    events = cli("describe", "job", "wide").stdout
    assert events.count("SuccessfulDelete") == 2, events


def test_scaling_to_zero_stops_every_pod_until_scaled_up(cli: Cli) -> None:
    cli.apply(job("idle", "  completions: 2\n  parallelism: 2\n", "exec sleep 60"))
    wait_for(lambda: cli.json("job", "idle")["status"].get("ready") == 2, timeout=15)
    cli("scale", "job/idle", "--parallelism", "0")
    wait_for(lambda: not _pods(cli, "idle"), timeout=10)
    status = cli.json("job", "idle")["status"]
    assert (status["active"], status["failed"]) == (0, 0) and not status.get("conditions")
    cli("scale", "job/idle", "--parallelism", "1")
    wait_for(lambda: cli.json("job", "idle")["status"].get("ready") == 1, timeout=10)
    assert len(_pods(cli, "idle")) == 1


def test_a_job_past_its_deadline_ends_with_no_active_pods(cli: Cli) -> None:
    cli.apply(job("late", "  activeDeadlineSeconds: 1\n  completions: 2\n  parallelism: 2\n", "exec sleep 60"))
    assert cli.wait("job/late", "condition=Failed", timeout=20).returncode == 0
    wait_for(lambda: not _pods(cli, "late"), timeout=10)
    wait_for(lambda: cli.json("job", "late")["status"]["active"] == 0, timeout=5)
    status = cli.json("job", "late")["status"]
    assert (status["active"], status["ready"], status["failed"]) == (0, 0, 2), status
    row = cli("get", "job", "late", "-o", "wide").stdout.splitlines()[1].split()
    assert row[1] == "Failed" and row[5:7] == ["0", "2"], row  # ACTIVE 0, FAILED 2
    assert "0 Active / 0 Succeeded / 2 Failed" in cli("describe", "job", "late").stdout


def test_a_job_past_its_backoff_limit_counts_the_pods_it_stopped(cli: Cli) -> None:
    cli.apply(job("mixed", "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n  backoffLimit: 0\n",
                  "test $JOB_COMPLETION_INDEX = 0 && { sleep 0.5; exit 3; }; exec sleep 60"))
    assert cli.wait("job/mixed", "condition=Failed", timeout=20).returncode == 0
    wait_for(lambda: cli.json("job", "mixed")["status"]["active"] == 0, timeout=10)
    status = cli.json("job", "mixed")["status"]
    assert (status["active"], status["failed"], status["succeeded"]) == (0, 3, 0), status
    reason = [c for c in status["conditions"] if c["type"] == "Failed"][0]["reason"]
    assert reason == "BackoffLimitExceeded"


def test_a_job_name_longer_than_a_label_is_refused_at_apply(cli: Cli) -> None:
    for name in ("n" * 64, "n" * 250):
        done = cli("apply", "-f", "-", check=False, input=job(name, "", "true"))
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].endswith(
            f"document 1 (Job/{name}): metadata.name: a Job name must be at most 63 characters "
            f"(it is the job-name label of its pods), got {len(name)}"), done.stderr
    generated = job("x", "", "true").replace("metadata: {name: x}", f"metadata: {{generateName: {'g' * 59}}}")
    done = cli("apply", "-f", "-", check=False, input=generated)
    assert done.returncode == 2 and "metadata.generateName: a Job generateName must be at most 58" in done.stderr
    assert cli.json("jobs")["items"] == []
