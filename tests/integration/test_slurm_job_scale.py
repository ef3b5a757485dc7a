"""Scaling an Indexed Job on a real Slurm cluster changes its job array's throttle (`ArrayTaskThrottle`), and
parallelism 0 holds the array's pending tasks until it is scaled up again."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli, wait_for
from tests.integration.test_slurm_pods import REASON, squeue

pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def _array(cli: Cli, name: str) -> str | None:
    found = re.search(r"Submitted +.*job array (\d+)", cli("describe", "job", name).stdout)
    return found[1] if found else None


def _pending(array: str) -> list[tuple[str, str]]:
    """(id, reason) of the array's pending tasks, as `squeue` shows them (`123_[1-2%1]`)."""
    return [tuple(line.split(maxsplit=1)) for line in squeue("-j", array, "-t", "PD", "-o", "%i %r").splitlines()]


def _throttles(array: str) -> set[str]:
    shown = subprocess.run(["scontrol", "show", "job", array], capture_output=True, text=True).stdout
    return set(re.findall(r"ArrayTaskThrottle=(\d+)", shown))


def test_scaling_an_indexed_job_holds_and_throttles_its_array(slurm: Cli) -> None:
    slurm.apply("""
apiVersion: batch/v1
kind: Job
metadata: {name: thr}
spec:
  completions: 3
  parallelism: 1
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: work, image: busybox, command: [sleep, "2"]}
""")
    array = wait_for(lambda: _array(slurm, "thr"), timeout=20)
    assert _throttles(array) == {"1"}
    slurm("scale", "job/thr", "--parallelism", "0")
    held = wait_for(lambda: [r for _, r in _pending(array) if r.startswith("JobHeld")], timeout=10)
    assert held, _pending(array)
    slurm("scale", "job/thr", "--parallelism", "3")
    wait_for(lambda: _throttles(array) == {"3"} and not any(r.startswith("JobHeld") for _, r in _pending(array)),
             timeout=10)
    assert not any("%1" in task for task, _ in _pending(array)), _pending(array)
    assert slurm.wait("job/thr", "condition=Complete", timeout=60).returncode == 0, \
        slurm("describe", "job", "thr").stdout
    events = slurm("describe", "job", "thr").stdout
    assert f"job array {array}: pending tasks held" in events and f"job array {array}: at most 3 tasks" in events
    status = slurm.json("job", "thr")["status"]
    assert (status["succeeded"], status["failed"], status["active"]) == (3, 0, 0)


def test_suspending_an_indexed_job_cancels_its_tasks_and_resuming_runs_every_index(slurm: Cli, tmp_path: Path) -> None:
    """Kubernetes' suspend on a job array: every task's pod is deleted, so the running task and the pending ones
    are cancelled (no failures, no startTime); resuming submits the indexes not done and the Job completes."""
    job = """
apiVersion: batch/v1
kind: Job
metadata: {name: sus}
spec:
  suspend: SUSPEND
  completions: 3
  parallelism: 1
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: work, image: busybox, command: [sh, -c, 'if mkdir MARK 2>/dev/null; then sleep 30; fi']}
""".replace("MARK", str(tmp_path / "first"))  # the first run of the first task lasts until it is cancelled
    slurm.apply(job.replace("SUSPEND", "false"))
    array = wait_for(lambda: _array(slurm, "sus"), timeout=20)
    wait_for(lambda: slurm.json("job", "sus")["status"].get("ready") == 1, timeout=30)
    slurm.apply(job.replace("SUSPEND", "true"))
    status = wait_for(lambda: (s := slurm.json("job", "sus")["status"]).get("active") == 0 and s, timeout=30)
    assert status["failed"] == 0 and "startTime" not in status
    assert [c["reason"] for c in status["conditions"] if c["type"] == "Suspended" and c["status"] == "True"] \
        == ["JobSuspended"]
    wait_for(lambda: not squeue("-j", array, "-h", "-o", "%i"), timeout=30)
    slurm.apply(job.replace("SUSPEND", "false"))
    assert slurm.wait("job/sus", "condition=Complete", timeout=90).returncode == 0, \
        slurm("describe", "job", "sus").stdout
    status = slurm.json("job", "sus")["status"]
    assert (status["succeeded"], status["failed"], status["completedIndexes"]) == (3, 0, "0-2")


@pytest.mark.parametrize("how", ["delete", "deadline"])
def test_an_indexed_job_that_ends_stops_its_running_tasks_and_starts_no_other(slurm: Cli, tmp_path: Path,
                                                                             how: str) -> None:
    """Deleted, or failed by activeDeadlineSeconds: its pending tasks are cancelled first, and every running one
    gets SIGTERM in the same pass (helper-72: each `scancel --batch --signal=TERM` of a task took 5 s to return
    while the array had pending tasks, so the tasks were stopped one grace period apart and a pending task the
    throttle let go started after the Job had ended)."""
    trace = tmp_path / "trace"
    deadline = "  activeDeadlineSeconds: 8\n" if how == "deadline" else ""
    slurm.apply(f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: ending}}
spec:
  completions: 4
  parallelism: 2
  completionMode: Indexed
{deadline}  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 10
      containers:
      - name: work
        image: busybox
        command: [sh, -c, 'echo start $JOB_COMPLETION_INDEX >> {trace};
          trap "echo term $JOB_COMPLETION_INDEX >> {trace}; sleep 2; exit 143" TERM; while true; do sleep 0.1; done']
""")
    wait_for(lambda: trace.exists() and trace.read_text().count("start") == 2, timeout=30)
    if how == "delete":
        slurm("delete", "job", "ending")
    else:
        assert slurm.wait("job/ending", "condition=Failed", timeout=30).returncode == 0
        wait_for(lambda: slurm.json("pods", "-l", "job-name=ending")["items"] == [], timeout=30)
    lines = trace.read_text().split("\n")
    assert sorted(line for line in lines if line) == ["start 0", "start 1", "term 0", "term 1"], lines


def test_a_retried_index_never_runs_beside_the_others_past_parallelism(slurm: Cli, tmp_path: Path) -> None:
    """parallelism 1: the retry array of a failed index waits for the first array's tasks (helper-72: it got a
    throttle of its own and ran beside them)."""
    trace, failed_once = tmp_path / "trace", tmp_path / "failed-once"
    slurm.apply(f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: one-at-a-time}}
spec:
  completions: 3
  parallelism: 1
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox
        command: [sh, -c, 'echo "$(date +%s.%N) start $JOB_COMPLETION_INDEX" >> {trace}; sleep 1;
          echo "$(date +%s.%N) end $JOB_COMPLETION_INDEX" >> {trace};
          if [ $JOB_COMPLETION_INDEX = 0 ] && [ ! -e {failed_once} ]; then touch {failed_once}; exit 1; fi']
""")
    assert slurm.wait("job/one-at-a-time", "condition=Complete", timeout=120).returncode == 0, \
        slurm("describe", "job", "one-at-a-time").stdout
    running, most = 0, 0
    for line in sorted(trace.read_text().splitlines(), key=lambda line: float(line.split()[0])):
        running += 1 if line.split()[1] == "start" else -1
        most = max(most, running)
    assert most == 1, trace.read_text()
    status = slurm.json("job", "one-at-a-time")["status"]
    assert (status["succeeded"], status["failed"], status["active"]) == (3, 1, 0), status
