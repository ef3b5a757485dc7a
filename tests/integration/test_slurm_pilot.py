"""Argo Workflows in a pilot allocation on a real Slurm cluster (`podline.io/pilot`): the steps share one job
instead of one sbatch each; a step too large for it gets its own; a pilot that is cancelled is replaced; a
deleted workflow leaves nothing running, and a finished one gives its allocation back."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli, gone, wait_for
from tests.integration.test_slurm_pods import REASON, squeue

pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def ours(shared: Path) -> list[tuple[str, str]]:
    """(job id, state) of every job submitted from under `shared`, ended ones included (MinJobAge)."""
    rows = [line.split() for line in squeue("--states=all", "-o", "%i %T %Z").splitlines()]
    return [(r[0], r[1]) for r in rows if len(r) == 3 and r[2].startswith(str(shared))]


def results(cli: Cli, name: str) -> dict[str, str]:
    wf = cli.json("workflow", name)
    return {n["displayName"]: n.get("outputs", {}).get("result", "") for n in wf["status"]["nodes"].values()
            if n["type"] == "Pod"}


CHAIN = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: piloted, annotations: {podline.io/pilot: "cpu=1,memory=1Gi"}}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - [{name: first, template: note}]
    - [{name: a, template: span}, {name: b, template: span}]
    - [{name: big, template: big}]
    - [{name: last, template: note}]
  - name: note
    container:
      image: busybox
      command: [sh, -c, 'echo $SLURM_JOB_ID']
      resources: {requests: {cpu: 500m, memory: 100Mi}}
  - name: span
    container:
      image: busybox
      command: [sh, -c, 'a=$(date +%s.%N); sleep 1; echo "$SLURM_JOB_ID $a $(date +%s.%N)"']
      resources: {requests: {cpu: 500m, memory: 100Mi}}
  - name: big
    container:
      image: busybox
      command: [sh, -c, 'echo $SLURM_JOB_ID']
      resources: {requests: {cpu: 500m, memory: 2Gi}}
"""


def test_steps_share_one_allocation_side_by_side_and_a_larger_step_gets_its_own(slurm: Cli, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    slurm.apply(CHAIN)
    assert slurm.wait("workflow/piloted", "phase=Succeeded", timeout=180).returncode == 0
    got = results(slurm, "piloted")
    pilot = got["first"]
    (job_a, a0, a1), (job_b, b0, b1) = (got[s].split() for s in ("a", "b"))
    assert pilot.isdigit() and job_a == job_b == pilot, got
    assert float(a0) < float(b1) and float(b0) < float(a1), "two half-core steps ran at once in the 1-core pilot"
    assert got["big"].isdigit() and got["big"] != pilot, "a step larger than the pilot (2Gi > 1Gi) runs on its own"
    # the idle pilot made room for it (on this 2-core node its job would otherwise wait for the pilot's idle
    # minute), so the step after it ran in the pilot's second generation
    record = json.loads(next((shared / "pilots").glob("*/pilot-job")).read_text())
    assert record == {"generation": 2, "job": got["last"]} and got["last"] not in (pilot, got["big"])
    assert sorted(job for job, _ in ours(shared)) == sorted([pilot, got["big"], got["last"]]), "3 sbatch for 5 pods"
    # the workflow is over: the agent leaves at once (not after its idle minute)
    wait_for(lambda: all(state in ("COMPLETED", "CANCELLED") for _, state in ours(shared)), timeout=30)
    pod = next(p for p in slurm.json("pod")["items"] if p["metadata"]["annotations"].get(
        "workflows.argoproj.io/node-name", "").endswith(".first"))
    described = slurm("describe", "pod", pod["metadata"]["name"]).stdout
    assert pilot in described and "Pilot:" in described, described


RETRIED = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: replaced, annotations: {{podline.io/pilot: "true"}}}}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - [{{name: once, template: hang}}]
  - name: hang
    retryStrategy: {{limit: 1, retryPolicy: Always}}
    container:
      image: busybox
      command: [sh, -c, 'if [ ! -e {gate} ]; then echo $SLURM_JOB_ID > {gate}; exec sleep 300; fi; echo $SLURM_JOB_ID']
"""
# `exec`: the step's one process is what the scancel kills. With `sleep` a child of the shell, slurmstepd (which
# signals a job's processes one by one) could kill the sleep before the shell, which then went on to its echo and
# exit 0: a step that finished on its own, Succeeded (the test's rare failure in CI34 and on 2026-11-27).


def test_a_cancelled_pilot_fails_its_step_and_the_retry_runs_in_a_new_allocation(slurm: Cli, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    slurm.apply(RETRIED.format(gate=gate))
    first = wait_for(lambda: gate.exists() and gate.read_text().strip(), timeout=60)
    subprocess.run(["scancel", first], check=True)  # an admin, pre-emption, or the pilot's time limit
    assert slurm.wait("workflow/replaced", "phase=Succeeded", timeout=120).returncode == 0
    wf = slurm.json("workflow", "replaced")
    attempts = sorted((n for n in wf["status"]["nodes"].values() if n["type"] == "Pod"), key=lambda n: n["startedAt"])
    # the admin's scancel ended the step from outside: Error, as Argo shows a pod its node took away
    assert [n["phase"] for n in attempts] == ["Error", "Succeeded"], [(n["phase"], n.get("message")) for n in attempts]
    assert f"job {first} ended CANCELLED" in attempts[0]["message"], attempts[0]
    second = attempts[1]["outputs"]["result"]
    assert second.isdigit() and second != first, "the retry ran in a second pilot job"


HANGING = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: stopped, annotations: {{podline.io/pilot: "true"}}}}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - [{{name: long, template: long}}]
  - name: long
    container: {{image: busybox, command: [sh, -c, 'echo $$$$ > {pid}; exec sleep 300']}}
"""


def test_deleting_the_workflow_stops_its_step_and_gives_the_allocation_back(slurm: Cli, tmp_path: Path) -> None:
    shared, pid_file = tmp_path / "shared", tmp_path / "pid"
    slurm.apply(HANGING.format(pid=pid_file))
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=60))
    slurm("delete", "workflow", "stopped")
    wait_for(lambda: gone(pid), timeout=60)
    wait_for(lambda: not any(state in ("PENDING", "RUNNING", "COMPLETING") for _, state in ours(shared)),
             timeout=60)
    wait_for(lambda: slurm("get", "workflow", "stopped", check=False).returncode != 0, timeout=30)
    assert list((shared / "pilots").iterdir()) == [], "the pilot's directory went with the workflow"


FLAGGED = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: {name}, annotations: {{podline.io/pilot: "true"}}}}
spec:
  entrypoint: main
  podMetadata: {{annotations: {{slurm.hpk.io/flags: "{shared_flags}"}}}}
  templates:
  - name: main
    steps:
    - [{{name: shared, template: plain}}, {{name: own, template: flagged}}]
  - name: plain
    container: {{image: busybox, command: [sh, -c, 'touch {marker}.$SLURM_JOB_ID; echo $SLURM_JOB_ID']}}
  - name: flagged
    metadata: {{annotations: {{slurm.hpk.io/flags: "--time=2"}}}}
    container: {{image: busybox, command: [sh, -c, 'echo $SLURM_JOB_ID']}}
"""


def test_a_step_with_flags_of_its_own_gets_its_own_job_and_a_refused_pilot_runs_nothing(slurm: Cli,
                                                                                        tmp_path: Path) -> None:
    slurm.apply(FLAGGED.format(name="flagged", shared_flags="--nice=1", marker=tmp_path / "ran"))
    assert slurm.wait("workflow/flagged", "phase=Succeeded", timeout=120).returncode == 0
    got = results(slurm, "flagged")
    assert got["shared"].isdigit() and got["own"].isdigit() and got["shared"] != got["own"], got
    slurm.apply(FLAGGED.format(name="refused", shared_flags="--reservation=nope", marker=tmp_path / "never"))
    assert slurm.wait("workflow/refused", "phase=Failed", timeout=120).returncode == 0
    pods = [p for p in slurm.json("pod")["items"] if p["metadata"]["name"].startswith("refused-")]
    shared_step = next(p for p in pods if "-plain-" in p["metadata"]["name"])
    assert shared_step["status"]["reason"] == "SubmitFailed" and "eservation" in shared_step["status"]["message"]
    uid = slurm.json("workflow", "refused")["metadata"]["uid"]
    assert list((tmp_path / "shared" / "pilots" / uid / "queue").iterdir()) == []  # nothing left to run later
    assert not list(tmp_path.glob("never.*"))
