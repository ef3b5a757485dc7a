"""Slurm's `--signal=B:USR1@T` (and `scancel --batch --signal=USR1`) reaches the batch shell, which `exec`s the
pod runner: the runner must survive it and pass it on to the containers (an HPK user's checkpoint request).

The rendered batch script runs here under plain bash, without Slurm (tests/integration/test_slurm_signals.py
does the same through Slurm); the signal goes to the script's process, as slurmstepd sends it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from podline.plan.pod import plan_pod
from podline.plan.slurm import Placement, render_pod
from podline.runtime.files import write_json_atomic

# Traps USR1, says it is ready, then waits (at most ~30 s) for the trap to have run.
CONTAINER = ('trap "echo trapped >> $OUT/trapped" USR1; touch $OUT/ready; i=0; '
             'while [ ! -s $OUT/trapped ]; do sleep 0.1; i=$((i+1)); [ $i -gt 300 ] && exit 3; done; echo done')


def masks(pid: int) -> tuple[int, int]:
    """(ignored, caught) signal masks of a process."""
    fields = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":\t" in line)
    return int(fields["SigIgn"], 16), int(fields["SigCgt"], 16)


def _container_state(rundir: Path) -> dict:
    try:
        status = json.loads((rundir / "status.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return {}
    return next(iter(status.get("containerStatuses", [])), {}).get("state", {})


def wait_until(check: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_runner_survives_usr1_and_forwards_it_to_the_container(tmp_path: Path) -> None:
    rundir, out = tmp_path / "run", tmp_path / "out"
    rundir.mkdir()
    out.mkdir()
    manifest = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "ckpt", "namespace": "default",
                             "annotations": {"slurm.hpk.io/flags": "--signal=USR1@120"}},
                "spec": {"restartPolicy": "Never", "containers": [{
                    "name": "c", "image": "x", "command": ["sh", "-c", CONTAINER],
                    "env": [{"name": "OUT", "value": str(out)}]}]}}
    write_json_atomic(rundir / "plan.json", plan_pod(manifest, "uid", lambda *a: None))
    script = rundir / "job.sbatch"
    script.write_text(render_pod(manifest, "uid", str(rundir), Placement(python=sys.executable)))
    proc = subprocess.Popen(["bash", str(script)], cwd=rundir, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        usr1 = 1 << (signal.SIGUSR1 - 1)
        # As early as the script has set USR1 aside (ignored by the shell, then caught by the runner): a signal
        # sent as the job starts must not kill the pod.
        wait_until(lambda: any(mask & usr1 for mask in masks(proc.pid)), "USR1 to be ignored or caught")
        os.kill(proc.pid, signal.SIGUSR1)
        wait_until(lambda: (out / "ready").exists() or proc.poll() is not None, "the container to start")
        assert proc.poll() is None, proc.communicate()[1]
        assert not (out / "trapped").exists()  # the early signal came before any container: nobody to tell
        # the container may touch `ready` before the runner has recorded it as started: wait for the record
        wait_until(lambda: "running" in _container_state(rundir), "the runner to record the container running")
        os.kill(proc.pid, signal.SIGUSR1)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert (out / "trapped").read_text() == "trapped\n"
    assert "forwarded SIGUSR1 to 1 running container(s)" in stderr
    status = json.loads((rundir / "status.json").read_text())["status"]
    assert status["phase"] == "Succeeded" and "reason" not in status
    assert (rundir / "logs" / "c.log").read_text().splitlines()[-1] == "done"
