"""The queue as other users and admins leave it: podline reads every squeue line it can, skips the others
without failing anyone's status, and copes with tasks cancelled behind its back.

squeue writes a foreign pending array with Slurm's step notation (`58_[0-12:2]`) or cuts a long task list
off without its `]`; neither may break the snapshot every podline job of the user is observed through. An
array task cancelled while pending has no run directory yet; its pod must fail (lost) and its Job retry.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli, wait_for
from tests.integration.test_slurm_job_scale import _array, _pending
from tests.integration.test_slurm_pods import REASON

pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

# Every 3rd and 7th index missing: too irregular for a short range list (squeue cuts it off).
IRREGULAR = ",".join(str(i) for i in range(400) if i % 3 and i % 7)


@pytest.fixture
def foreign_arrays() -> Iterator[list[str]]:
    """Held arrays outside podline (no `podline:` comment), cancelled at the end."""
    ids = [subprocess.run(["sbatch", "--parsable", "--hold", f"--array={spec}", "-p", "debug", "-o", "/dev/null",
                           "--job-name=foreign", "--wrap", "true"], capture_output=True, text=True,
                          check=True).stdout.strip().split(";")[0] for spec in ("0-12:2", IRREGULAR)]
    try:
        yield ids
    finally:
        subprocess.run(["scancel", *ids], check=False)


def test_foreign_step_and_cut_off_arrays_do_not_break_podline_status(slurm: Cli, foreign_arrays: list[str],
                                                                    tmp_path: Path) -> None:
    """The pod's Slurm state comes from the snapshot: with a snapshot that failed to parse on every pass it
    never would, and a pod running past the submission grace would be declared lost."""
    go = tmp_path / "go"
    shown = subprocess.run(["squeue", "-h", "-j", ",".join(foreign_arrays), "-o", "%i"], capture_output=True,
                           text=True, check=True).stdout
    assert f"{foreign_arrays[0]}_[0-12:2]" in shown  # the shapes this test is about, as squeue writes them
    assert any(line.startswith(f"{foreign_arrays[1]}_[") and not line.endswith("]") for line in shown.split())
    slurm.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: beside}}
spec:
  restartPolicy: Never
  containers: [{{name: main, image: busybox, command: [sh, -c, "while [ ! -e {go} ]; do sleep 0.2; done; echo ok"]}}]
---
apiVersion: batch/v1
kind: Job
metadata: {{name: throttled}}
spec:
  completions: 3
  parallelism: 1
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: work, image: busybox, command: [sleep, "1"]}}]
""")
    wait_for(lambda: re.search(r"Slurm State: +RUNNING", slurm("describe", "pod", "beside").stdout), timeout=30)
    go.touch()
    assert slurm.wait("pod/beside", "phase=Succeeded").returncode == 0, slurm("describe", "pod", "beside").stdout
    assert slurm("logs", "beside").stdout == "ok\n"
    ended = slurm("describe", "pod", "beside").stdout  # the queue's last word is gone with the pod's end
    assert "Slurm Job:" in ended and "Slurm State:" not in ended and "Slurm Reason:" not in ended, ended
    assert slurm.wait("job/throttled", "condition=Complete", timeout=90).returncode == 0, \
        slurm("describe", "job", "throttled").stdout
    status = slurm.json("job", "throttled")["status"]
    assert (status["succeeded"], status["failed"]) == (3, 0)


def test_pending_task_cancelled_outside_podline_fails_and_its_job_retries(slurm: Cli, tmp_path: Path) -> None:
    go = tmp_path / "go"
    slurm.apply(f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: cut}}
spec:
  completions: 3
  parallelism: 1
  completionMode: Indexed
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox
        command: [sh, -c, 'test $JOB_COMPLETION_INDEX != 0 || while [ ! -e {go} ]; do sleep 0.2; done']
""")
    array = wait_for(lambda: _array(slurm, "cut"), timeout=20)
    wait_for(lambda: slurm.json("job", "cut")["status"].get("ready") == 1, timeout=30)  # task 0 runs, 1-2 pend
    assert _pending(array), "tasks 1 and 2 should wait behind the throttle"
    subprocess.run(["scancel", f"{array}_2"], check=True)
    go.touch()
    assert slurm.wait("job/cut", "condition=Complete", timeout=90).returncode == 0, \
        slurm("describe", "job", "cut").stdout
    status = slurm.json("job", "cut")["status"]
    assert (status["succeeded"], status["failed"], status["completedIndexes"]) == (3, 1, "0-2")
    failed = [p["status"] for p in slurm.json("pods")["items"] if p["status"].get("phase") == "Failed"]
    assert [f["reason"] for f in failed] == ["Cancelled"], failed  # scancel'led waiting: not a lost node
    slurm("delete", "job", "cut", timeout=60)
    wait_for(lambda: "cut" not in slurm("get", "jobs").stdout, timeout=30)
