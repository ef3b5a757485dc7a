"""Killing the controller (SIGKILL) or a pod runner loses nothing and runs nothing twice."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from podline.backends.local import LocalBackend
from podline.plan.pod import plan_pod
from podline.store import Store
from tests.conftest import Cli, wait_for


def test_sigkill_controller_mid_job_loses_and_duplicates_nothing(cli: Cli, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    cli.apply(f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: ledgered}}
spec:
  completions: 8
  parallelism: 3
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      volumes: [{{name: ledger, hostPath: {{path: {ledger}}}}}]
      containers:
      - name: work
        image: busybox
        command: [sh, -c, "echo $JOB_COMPLETION_INDEX >> /ledger/runs; sleep 1.5;
                           echo $JOB_COMPLETION_INDEX >> /ledger/done"]
        volumeMounts: [{{name: ledger, mountPath: /ledger}}]
""")
    # Kill the controller twice while pods are running, restarting it in between.
    for _ in range(2):
        wait_for(lambda: cli.json("job", "ledgered")["status"].get("ready", 0) >= 1)
        cli.kill_controller_and_restart()  # pods go on without a controller meanwhile
    assert cli.wait("job/ledgered", "condition=Complete", timeout=90).returncode == 0
    runs = sorted(int(x) for x in (ledger / "runs").read_text().split())
    done = sorted(int(x) for x in (ledger / "done").read_text().split())
    assert runs == list(range(8)), "every index ran exactly once"
    assert done == list(range(8))
    status = cli.json("job", "ledgered")["status"]
    assert status["succeeded"] == 8 and status["failed"] == 0
    assert len(cli.json("pods", "-l", "job-name=ledgered")["items"]) == 8


def test_killed_runner_fails_the_pod_and_the_job_replaces_it(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "attempts"
    cli.apply(f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: resilient}}
spec:
  backoffLimit: 3
  template:
    spec:
      restartPolicy: Never
      volumes: [{{name: m, hostPath: {{path: {tmp_path}}}}}]
      containers:
      - name: work
        image: busybox
        command: [sh, -c, "echo x >> /m/attempts; test $(wc -l < /m/attempts) -ge 2 || sleep 300"]
        volumeMounts: [{{name: m, mountPath: /m}}]
""")
    started = wait_for(lambda: next(iter(cli.home.glob("pods/default/resilient-*/*/started")), None))
    wait_for(lambda: marker.exists())
    os.kill(json.loads(started.read_text())["pid"], signal.SIGKILL)  # the pod runner, not the container
    assert cli.wait("job/resilient", "condition=Complete").returncode == 0
    pods = cli.json("pods", "-l", "job-name=resilient")["items"]
    phases = sorted(p["status"]["phase"] for p in pods)
    assert phases == ["Failed", "Succeeded"]
    lost = [p for p in pods if p["status"]["phase"] == "Failed"][0]["status"]
    assert lost["reason"] == "RunnerLost"
    assert lost["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    assert marker.read_text().count("x") == 2


def test_relaunching_an_attempt_never_runs_it_twice(tmp_path: Path) -> None:
    """A controller that crashed after recording intent launches again: the runner guard makes it once."""
    backend = LocalBackend(tmp_path)
    store = Store(tmp_path / "state.db")
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "once", "namespace": "default"},
                "spec": {"restartPolicy": "Never", "containers": [
                    {"name": "c", "image": "x", "command": ["sh", "-c", f"echo ran >> {tmp_path}/count; sleep 0.3"]}]}}
    _, obj = store.apply("Pod", "default", "once", manifest)
    plan = plan_pod(manifest, obj.uid, lambda *a: None)
    rundir = backend.run_dir("default", "once", obj.uid)
    for _ in range(3):
        backend.launch(rundir, plan)
    wait_for(lambda: backend.observe(rundir).state == "finished", timeout=20)
    for _ in range(2):
        backend.launch(rundir, plan)  # after it finished, too
    time.sleep(0.5)
    assert (tmp_path / "count").read_text() == "ran\n"
    assert backend.observe(rundir).status["phase"] == "Succeeded"
