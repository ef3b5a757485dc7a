"""RAM-backed volumes on real Slurm: the tasks of an Indexed Job's one job array each have their own (one
plan, one uid, yet no task sees or removes another's), and what a killed runner left in the node's RAM is
removed by the next runner on that node once its pod is deleted."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import Cli, wait_for
from tests.integration.test_slurm_pods import REASON, squeue

pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

# Both tasks run at once (each waits for the other's mark), so with one directory for both each would see both
# files, and the first to end would take the other's away.
JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: ram}
spec:
  completions: 2
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      volumes: [{name: ram, emptyDir: {medium: Memory}}, {name: sync, hostPath: {path: SYNC}}]
      containers:
      - name: work
        image: busybox
        command: [sh, -c, 'echo $JOB_COMPLETION_INDEX > /ram/mine-$JOB_COMPLETION_INDEX;
                           touch /sync/ready-$JOB_COMPLETION_INDEX;
                           for i in $(seq 100); do [ $(ls /sync | wc -l) -ge 2 ] && break; sleep 0.2; done;
                           sleep 1; ls /ram; cat /ram/mine-$JOB_COMPLETION_INDEX']
        volumeMounts: [{name: ram, mountPath: /ram}, {name: sync, mountPath: /sync}]
"""


def test_each_array_task_has_its_own_memory_emptydir(slurm: Cli, tmp_path: Path) -> None:
    sync = tmp_path / "sync"
    sync.mkdir()
    slurm.apply(JOB.replace("SYNC", str(sync)))
    assert slurm.wait("job/ram", "condition=Complete", timeout=120).returncode == 0, \
        slurm("describe", "job", "ram").stdout
    for index in (0, 1):
        assert slurm("logs", "job/ram", "--shard", str(index)).stdout.split() == [f"mine-{index}", str(index)]
    assert sorted(p.name for p in sync.iterdir()) == ["ready-0", "ready-1"]
    assert not list((tmp_path / "shm").glob("podline-*")), "each task gave its RAM back"


def test_a_killed_runners_ram_goes_once_its_pod_is_deleted(slurm: Cli, tmp_path: Path) -> None:
    slurm.apply("""
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  volumes: [{name: ram, emptyDir: {medium: Memory}}]
  containers:
  - {name: main, image: busybox, command: [sh, -c, "echo held > /ram/data; sleep 60"],
     volumeMounts: [{name: ram, mountPath: /ram}]}
""")
    uid = slurm.json("pod", "hog")["metadata"]["uid"]
    held = tmp_path / "shm" / f"podline-{uid}"
    wait_for(lambda: (held / "ram" / "data").exists(), timeout=60)
    rundir = tmp_path / "shared" / "pods" / "default" / "hog" / uid
    job = (rundir / "slurm-job-id").read_text().strip()
    # no chance to clean up, as when Slurm's SIGKILL follows a time limit's SIGTERM before the grace period ends
    # (scancel sends SIGTERM first, which the runner answers by cleaning up: the runner is killed directly)
    os.kill(json.loads((rundir / "started").read_text())["pid"], signal.SIGKILL)
    wait_for(lambda: squeue("-j", job, "-o", "%T").strip() == "", timeout=60)
    assert (held / "ram" / "data").exists()
    slurm("delete", "pod", "hog")
    wait_for(lambda: slurm("get", "pod", "hog", check=False).returncode != 0, timeout=60)
    assert held.exists() and not rundir.exists()  # the controller cannot reach a node's RAM

    slurm.apply("""
apiVersion: v1
kind: Pod
metadata: {name: next}
spec:
  restartPolicy: Never
  containers: [{name: main, image: busybox, command: ["true"]}]
""")
    assert slurm.wait("pod/next", "phase=Succeeded").returncode == 0, slurm("describe", "pod", "next").stdout
    assert not held.exists()
