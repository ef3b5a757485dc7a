"""Pipelines on a real Slurm cluster: shards are one job array; a cancelled shard resumes from its checkpoints."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli, wait_for
from tests.integration.test_slurm_pods import REASON, cancel_leftovers

pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture
def hpc(cli: Cli, tmp_path: Path) -> Iterator[Cli]:
    shared, scratch = tmp_path / "shared", tmp_path / "scratch"
    shared.mkdir()
    cli("config", "set-context", "hpc", "--backend", "slurm", "--partition", "debug", "--shared-dir", str(shared),
        "--scratch-dir", str(scratch))
    cli("config", "use-context", "hpc")
    yield cli
    cancel_leftovers(shared)


def sharded(out: Path, gate: Path | None = None) -> str:
    hang = f"if [ $PODLINE_SHARD = 1 ] && [ ! -e {gate} ]; then touch {gate}; sleep 300; fi; " if gate else ""
    return f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: shards}}
spec:
  shards: 3
  outputs: [{{path: result, destination: {out}}}]
  steps:
  - name: make
    image: busybox
    command: [sh, -c, 'echo "shard $PODLINE_SHARD on $SLURM_ARRAY_TASK_ID" > data']
  - name: finish
    image: busybox
    dependsOn: [make]
    command: [sh, -c, '{hang}mkdir -p result && cat data > result/who']
"""


def test_three_shards_run_as_one_job_array(hpc: Cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    hpc.apply(sharded(out))
    assert hpc.wait("pipeline/shards", "phase=Succeeded", timeout=120).returncode == 0
    got = [(out / str(i) / "who").read_text() for i in range(3)]
    assert got == [f"shard {i} on {i}\n" for i in range(3)]
    shards = hpc.json("pipeline", "shards")["status"]["shards"]
    arrays = {s["jobId"].split("_")[0] for s in shards}
    assert len(arrays) == 1, f"one sbatch for all shards, got {shards}"
    assert [s["jobId"].split("_")[1] for s in shards] == ["0", "1", "2"]


def test_dataset_shards_stage_their_slices_on_slurm(hpc: Cli, tmp_path: Path) -> None:
    """A Dataset on the sshfs shared storage, 2 shards in one job array: each array task stages its slice on
    the node (through the node cache in the context's scratch directory); a second pipeline reuses it."""
    from tests.integration.test_datasets_local import SSHFS, manifests
    if not SSHFS.is_mount():
        pytest.skip(f"{SSHFS} is not mounted (run scripts/sshfs-up.sh as root)")
    source = SSHFS / "tests" / f"slurm-dataset-{tmp_path.name}"
    try:
        for i in range(5):
            (source / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
            (source / f"d{i % 2}" / f"ev{i}.root").write_text(f"event {i}\n")
            os.utime(source / f"d{i % 2}" / f"ev{i}.root", (1.7e9, 1.7e9))  # old files: the node cache trusts them
        out, again = tmp_path / "out", tmp_path / "again"
        hpc.apply(manifests("onslurm", source, out, 2))
        assert hpc.wait("pipeline/onslurm", "phase=Succeeded", timeout=180).returncode == 0
        files = [(out / str(k) / "files").read_text().split() for k in range(2)]
        assert files == [["./d0/ev0.root", "./d0/ev4.root", "./d1/ev3.root"], ["./d0/ev2.root", "./d1/ev1.root"]]
        shards = hpc.json("pipeline", "onslurm")["status"]["shards"]
        assert len({s["jobId"].split("_")[0] for s in shards}) == 1
        assert [s["staging"]["filesCopied"] for s in shards] == [3, 2]
        hpc.apply(manifests("again", source, again, 2).split("---\n", 1)[1])
        assert hpc.wait("pipeline/again", "phase=Succeeded", timeout=180).returncode == 0
        staged = [s["staging"] for s in hpc.json("pipeline", "again")["status"]["shards"]]
        assert [(s["filesReused"], s["filesCopied"]) for s in staged] == [(3, 0), (2, 0)]
    finally:
        shutil.rmtree(source, ignore_errors=True)


def test_cancelled_shard_resumes_from_its_checkpoint(hpc: Cli, tmp_path: Path) -> None:
    out, gate = tmp_path / "out", tmp_path / "gate"
    hpc.apply(sharded(out, gate))
    wait_for(lambda: gate.exists(), timeout=120)
    shard = wait_for(lambda: next((s for s in hpc.json("pipeline", "shards")["status"]["shards"]
                                   if s["index"] == 1 and s.get("jobId")), None))
    subprocess.run(["scancel", shard["jobId"]], check=True)  # as if the node had died under it
    assert hpc.wait("pipeline/shards", "phase=Succeeded", timeout=180).returncode == 0
    status = hpc.json("pipeline", "shards")["status"]
    one = status["shards"][1]
    assert one["attempts"] == 2 and one["restoredFrom"] in ("L1", "L2"), one
    steps = {s["name"]: s for s in status["steps"] if s["shard"] == 1}
    assert steps["make"]["attempts"] == 1 and steps["finish"]["attempts"] == 2
    assert (out / "1" / "who").read_text() == "shard 1 on 1\n"


def test_indexed_job_in_pipeline_form_resumes_an_index_on_slurm(hpc: Cli, tmp_path: Path) -> None:
    """The Kubernetes-native pipeline form in a job array: index 1's first pod fails after `gen`; the Job's
    next array task for index 1 restores the L2 copy from the node's scratch and does not run `gen` again."""
    from tests.integration.test_pod_pipelines import EXPECTED, job, succeeded_logs

    tally, gate = tmp_path / "tally", tmp_path / "gate"
    fail_once = f'if [ $JOB_COMPLETION_INDEX = 1 ] && [ ! -e {gate} ]; then touch {gate}; exit 1; fi'
    hpc.apply(job("slurmresume", tally, gate, fail_once, medium="Memory"))
    assert hpc.wait("job/slurmresume", "condition=Complete", timeout=150).returncode == 0
    assert succeeded_logs(hpc, "slurmresume") == EXPECTED
    assert [(tmp_path / f"tally-{i}").read_text() for i in range(2)] == ["run\n", "run\n"]
    resumed = [p for p in hpc.json("pods")["items"] if p["status"].get("restoredFrom")]
    assert [p["status"]["restoredFrom"] for p in resumed] == ["L2"], resumed


def test_describe_shows_why_a_shard_waits_in_slurms_queue(hpc: Cli, tmp_path: Path) -> None:
    hpc.apply("""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {name: later, annotations: {slurm.hpk.io/flags: "--begin=now+1hour"}}
spec:
  steps:
  - {name: one, image: busybox, command: ["true"]}
""")
    described = wait_for(lambda: (text := hpc("describe", "pipeline", "later").stdout) and "(BeginTime)" in text
                         and text, timeout=60)
    assert "Message:" in described and "PENDING (BeginTime)" in described, described
    hpc("delete", "pipeline", "later", timeout=60)


def test_a_shard_no_node_of_the_partition_can_hold_is_unschedulable(hpc: Cli) -> None:
    """As a pod (helper-78): Slurm queues it (PartitionConfig) and it would wait for ever; the shard says
    Unschedulable with a FailedScheduling warning, not a quiet Queued."""
    hpc.apply("""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {name: huge}
spec:
  steps:
  - {name: a, image: busybox, command: ["true"], resources: {requests: {cpu: "64"}}}
""")
    shard = wait_for(lambda: next((s for s in hpc.json("pipeline", "huge")["status"].get("shards", [])
                                   if s.get("reason") == "Unschedulable"), None), timeout=30)
    assert "PartitionConfig" in shard["message"], shard
    described = hpc("describe", "pipeline", "huge").stdout
    assert "FailedScheduling" in described and "shard 0: " in described, described
    hpc("delete", "pipeline", "huge", timeout=60)


def test_a_shard_whose_job_slurm_suspended_says_so(hpc: Cli) -> None:
    """`scontrol suspend` stops the shard's processes; it was shown as plain Running (helper-78)."""
    hpc.apply("""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {name: paused}
spec:
  steps:
  - {name: a, image: busybox, command: [sh, -c, "sleep 60"]}
""")
    job = wait_for(lambda: next((s.get("jobId") for s in hpc.json("pipeline", "paused")["status"].get("shards", [])
                                 if s.get("phase") == "Running" and s.get("jobId")), None), timeout=60)
    subprocess.run(["scontrol", "suspend", str(job)], check=True, capture_output=True)
    try:
        shard = wait_for(lambda: next((s for s in hpc.json("pipeline", "paused")["status"]["shards"]
                                       if s.get("reason") == "Suspended"), None), timeout=30)
        assert shard["phase"] == "Running" and "scontrol suspend" in shard["message"], shard
    finally:
        subprocess.run(["scontrol", "resume", str(job)], capture_output=True)
    wait_for(lambda: not hpc.json("pipeline", "paused")["status"]["shards"][0].get("reason"), timeout=30)
    assert "message" not in hpc.json("pipeline", "paused")["status"]["shards"][0]
    hpc("delete", "pipeline", "paused", timeout=60)


def test_an_applied_change_reaches_a_running_pipeline_on_slurm(hpc: Cli, tmp_path: Path) -> None:
    """helper-85: on Slurm, re-applying a changed spec (or scaling) broke every controller pass from then on
    (KeyError 'cores': only a local shard's plan has it); the step not started yet must take the new spec."""
    gate, out = tmp_path / "gate", tmp_path / "out"
    first = f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: upd}}
spec:
  outputs: [{{path: result, destination: {out}}}]
  steps:
  - {{name: first, image: busybox, command: [sh, -c, 'until [ -e {gate} ]; do sleep 0.1; done']}}
  - {{name: second, image: busybox, dependsOn: [first], command: [sh, -c, 'mkdir -p result; echo old > result/who']}}
"""
    hpc.apply(first)
    wait_for(lambda: any(s["name"] == "first" and s["phase"] == "Running"
                         for s in hpc.json("pipeline", "upd")["status"].get("steps", [])), timeout=60)
    hpc.apply(first.replace("echo old", "echo new"))
    wait_for(lambda: "Updated" in hpc("describe", "pipeline", "upd").stdout, timeout=30)
    gate.touch()
    assert hpc.wait("pipeline/upd", "phase=Succeeded", timeout=60).returncode == 0
    assert (out / "who").read_text() == "new\n"
