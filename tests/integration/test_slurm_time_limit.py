"""A pod that Slurm itself stops at its time limit, on the test cluster's spare node (scripts/slurm-nodes-up.sh:
pl-n3, alone in partition `spare`).

Slurm's time limits are whole minutes and slurmctld checks them every 30 s, so this test holds a core for 60 to
90 s. On a node no other test uses, and outside the Slurm files' one xdist worker (tests/conftest.py), it runs
beside them instead of adding a minute and a half to their queue."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.integration.test_slurm_pods import REASON, cancel_leftovers


def spare_unavailable() -> str | None:
    if REASON is not None:
        return REASON
    proc = subprocess.run(["sinfo", "-h", "-p", "spare", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0 or not any(s.rstrip("*") in ("idle", "mixed", "allocated") for s in proc.stdout.split()):
        return f"no usable node in partition spare ({proc.stdout.strip() or proc.stderr.strip() or 'none'}); " \
               "run scripts/slurm-nodes-up.sh as root"
    return None


SPARE_REASON = spare_unavailable()
pytestmark = pytest.mark.skipif(SPARE_REASON is not None, reason=SPARE_REASON or "")


@pytest.fixture
def spare(cli: Cli, tmp_path: Path) -> Iterator[Cli]:
    shared = tmp_path / "shared"
    shared.mkdir()
    cli("config", "set-context", "hpc", "--backend", "slurm", "--partition", "spare", "--shared-dir", str(shared))
    cli("config", "use-context", "hpc")
    yield cli
    cancel_leftovers(shared)


def test_a_pod_past_its_slurm_time_limit_fails_with_deadline_exceeded(spare: Cli) -> None:
    """Slurm (not podline) stops the job at --time: the runner only sees SIGTERM ("Terminated"); the pod
    takes Slurm's verdict, TIMEOUT, as Kubernetes' DeadlineExceeded."""
    spare.apply("""
apiVersion: v1
kind: Pod
metadata:
  name: overtime
  annotations: {slurm.hpk.io/flags: "--time=0:05"}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers: [{name: main, image: busybox, command: [sleep, "300"]}]
""")
    assert spare.wait("pod/overtime", "phase=Failed", timeout=150).returncode == 0, spare("describe", "pod",
                                                                                          "overtime").stdout
    status = spare.json("pod", "overtime")["status"]
    assert status["reason"] == "DeadlineExceeded" and "TIMEOUT" in status["message"], status
    spare_nodes = subprocess.run(["sinfo", "-h", "-p", "spare", "-o", "%n"], capture_output=True, text=True).stdout
    assert spare.json("pod", "overtime")["spec"]["nodeName"] in spare_nodes.split()
