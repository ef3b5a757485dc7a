"""A pod that Slurm itself stops at its time limit, on the test cluster's spare node (scripts/slurm-nodes-up.sh:
pl-n3, alone in partition `spare`).

Slurm's time limits are whole minutes and slurmctld checks them every 30 s, so the pod runs 60 to 90 s. It is
started once per session by the first Slurm test of the run (`overtime` in tests/integration/conftest.py) and
waits out its limit on a node no other test uses while the other Slurm tests run; this file, last of the Slurm
files, checks how it ended. Run alone, the test starts it itself and waits."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import Cli
from tests.integration.test_slurm_pods import REASON

OVERTIME = """
apiVersion: v1
kind: Pod
metadata:
  name: overtime
  annotations: {slurm.hpk.io/flags: "--time=0:05"}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers: [{name: main, image: busybox, command: [sleep, "300"]}]
"""


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


def test_a_pod_past_its_slurm_time_limit_fails_with_deadline_exceeded(overtime: Cli) -> None:
    """Slurm (not podline) stops the job at --time: the runner only sees SIGTERM ("Terminated"); the pod
    takes Slurm's verdict, TIMEOUT, as Kubernetes' DeadlineExceeded."""
    assert overtime.wait("pod/overtime", "phase=Failed", timeout=150).returncode == 0, \
        overtime("describe", "pod", "overtime").stdout
    pod = overtime.json("pod", "overtime")
    assert pod["status"]["reason"] == "DeadlineExceeded" and "TIMEOUT" in pod["status"]["message"], pod["status"]
    spare_nodes = subprocess.run(["sinfo", "-h", "-p", "spare", "-o", "%n"], capture_output=True, text=True).stdout
    assert pod["spec"]["nodeName"] in spare_nodes.split()
