"""Slurm flags that used to break a pod on a real cluster: `--signal` (the runner died of the signal and left
its container running) and `--mem-per-cpu` (sbatch refused it next to podline's `--mem`).

A timed `--signal=B:USR1@T` fires T seconds before the time limit, at minute granularity: the test sends the
same signal the same way (`scancel --batch --signal=USR1`: to the batch shell, which is the pod runner).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli, wait_for
from tests.integration.test_slurm_pods import REASON, _slurm_id

pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def test_usr1_to_the_batch_shell_reaches_the_container_and_the_pod_succeeds(slurm: Cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    slurm.apply(f"""
apiVersion: v1
kind: Pod
metadata:
  name: ckpt
  annotations: {{slurm.hpk.io/flags: "--signal=B:USR1@60 --time=10"}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'trap "echo checkpoint > {out}/trapped" USR1; touch {out}/ready; i=0;
                       while [ ! -s {out}/trapped ]; do sleep 0.2; i=$((i+1)); [ $i -gt 300 ] && exit 3; done;
                       echo resumed']
""")
    wait_for(lambda: (out / "ready").exists(), timeout=60)
    job = _slurm_id(slurm, "ckpt")
    assert job
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], check=True)
    assert slurm.wait("pod/ckpt", "phase=Succeeded").returncode == 0, slurm("describe", "pod", "ckpt").stdout
    assert (out / "trapped").read_text() == "checkpoint\n"
    assert slurm("logs", "ckpt").stdout.splitlines()[-1] == "resumed"  # after "User defined signal 1" (its sleep)
    uid = slurm.json("pod", "ckpt")["metadata"]["uid"]
    rundir = next(slurm.home.parent.glob(f"shared/pods/default/ckpt/{uid}"))
    assert "#SBATCH --signal=B:USR1@60\n" in (rundir / "job.sbatch").read_text()
    assert "forwarded SIGUSR1 to 1 running container(s)" in (rundir / f"slurm-{job}.out").read_text()


def test_mem_per_cpu_annotation_replaces_the_pods_memory_request(slurm: Cli) -> None:
    slurm.apply("""
apiVersion: v1
kind: Pod
metadata:
  name: percpu
  annotations: {slurm-job.vk.io/flags: "--mem-per-cpu=100M"}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: busybox, command: [sh, -c, "echo $SLURM_MEM_PER_CPU"], resources: {requests: {memory: 64Mi}}}
""")
    assert slurm.wait("pod/percpu", "phase=Succeeded").returncode == 0, slurm("describe", "pod", "percpu").stdout
    assert slurm("logs", "percpu").stdout == "100\n"  # Slurm's own reading of the option, in MB
