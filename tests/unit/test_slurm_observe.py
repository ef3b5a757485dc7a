"""How the Slurm backend reads a job's fate from the squeue snapshot when the runner left no final word.

NODE_FAIL, OUT_OF_MEMORY or a pre-emption cannot be produced on the single-node test cluster, so the
snapshot is fed in (the rest of the backend is the real code, on a real run directory). Likewise a failing
squeue and a killed sbatch, for the submission's safety rules.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from podline.api.config import Context
from podline.backends.base import SubmitError
from podline.backends.sbatch import Result
from podline.backends.slurm import SlurmBackend
from podline.backends.squeue import parse_squeue
from podline.controller import pods
from podline.controller.context import Ctx
from podline.runtime.files import write_json_atomic
from podline.store import Store

UID = "11111111-2222-3333-4444-555555555555"


def backend_with(tmp_path: Path, line: str | None) -> tuple[SlurmBackend, Path]:
    backend = SlurmBackend("hpc", Context(backend="slurm", shared_dir=str(tmp_path)), tmp_path)
    backend.watcher.jobs = parse_squeue(line or "")
    backend.watcher.taken_at = time.monotonic() + 3600  # no real squeue during the test
    rundir = backend.run_dir("default", "p", UID)
    rundir.mkdir(parents=True)
    (rundir / "slurm-job-id").write_text("42\n")
    write_json_atomic(rundir / "started", {"pid": 1})
    return backend, rundir


@pytest.mark.parametrize(("state", "reason"), [
    ("TIMEOUT", "DeadlineExceeded"), ("OUT_OF_MEMORY", "OOMKilled"), ("NODE_FAIL", "NodeLost"),
    ("CANCELLED", "Cancelled"), ("PREEMPTED", "Preempted"), ("FAILED", "RunnerLost"),
])
def test_job_that_ended_without_final_status_is_lost_with_a_kubernetes_reason(tmp_path: Path, state: str,
                                                                               reason: str) -> None:
    backend, rundir = backend_with(tmp_path, f"42|{state}|None|node7|podline:{UID}")
    seen = backend.observe(rundir)
    assert seen.state == "lost" and seen.reason == reason
    assert f"Slurm job 42 ended {state}" in seen.detail and seen.info["slurmNode"] == "node7"


def test_pending_job_is_queued_with_the_scheduler_reason(tmp_path: Path) -> None:
    backend, rundir = backend_with(tmp_path, f"42|PENDING|Priority||podline:{UID}")
    seen = backend.observe(rundir)
    assert seen.state == "queued" and "PENDING (Priority)" in seen.detail


def test_final_status_wins_over_the_queue_state(tmp_path: Path) -> None:
    backend, rundir = backend_with(tmp_path, f"42|COMPLETED|None|node7|podline:{UID}")
    write_json_atomic(rundir / "status.json", {"status": {"phase": "Succeeded"}, "finished": True, "node": "n"})
    assert backend.observe(rundir).state == "finished"


TERMINATED = {"status": {"phase": "Failed", "reason": "Terminated", "message": "pod was stopped"},
              "finished": True, "node": "node7"}


@pytest.mark.parametrize(("line", "state", "reason"), [
    (f"42|TIMEOUT|TimeLimit|node7|podline:{UID}", "finished", "DeadlineExceeded"),  # Slurm's SIGTERM at --time
    (f"42|PREEMPTED|None|node7|podline:{UID}", "finished", "Preempted"),
    (f"42|COMPLETING|None|node7|podline:{UID}", "running", None),  # Slurm's verdict is not in yet
    (f"42|CANCELLED|None|node7|podline:{UID}", "finished", "Cancelled"),  # an admin's scancel, not podline's
    (None, "finished", "Terminated"),  # gone from the queue: the runner's word stands
])
def test_a_runner_stopped_by_sigterm_takes_slurms_reason(tmp_path: Path, line: str | None, state: str,
                                                         reason: str | None) -> None:
    backend, rundir = backend_with(tmp_path, line)
    write_json_atomic(rundir / "status.json", TERMINATED)
    seen = backend.observe(rundir)
    assert seen.state == state
    if reason is None:  # waiting: no final status yet, or the pod would settle on "Terminated"
        assert seen.status is None
        return
    assert seen.status is not None and seen.status["reason"] == reason
    if reason != "Terminated":
        assert seen.status["message"].startswith("Slurm job 42 ended ")


def test_a_stop_podline_asked_for_keeps_the_runners_reason(tmp_path: Path) -> None:
    backend, rundir = backend_with(tmp_path, f"42|RUNNING|None|node7|podline:{UID}")
    write_json_atomic(rundir / "status.json", TERMINATED)
    backend._scancel_nowait = lambda *args: None  # type: ignore[method-assign]  # no real job 42
    backend.cancel(rundir)  # what `podline delete` does first: SIGTERM to the batch step
    seen = backend.observe(rundir)
    assert seen.state == "finished" and seen.status is not None and seen.status["reason"] == "Terminated"


def test_other_final_reasons_are_the_runners_own(tmp_path: Path) -> None:
    backend, rundir = backend_with(tmp_path, f"42|TIMEOUT|TimeLimit|node7|podline:{UID}")
    own = {"status": {"phase": "Failed", "reason": "DeadlineExceeded", "message": "runner's"}, "finished": True}
    write_json_atomic(rundir / "status.json", own)
    assert backend.observe(rundir).status == own["status"]


def test_job_gone_from_the_queue_without_status_is_node_lost(tmp_path: Path) -> None:
    backend, rundir = backend_with(tmp_path, None)
    seen = backend.observe(rundir)
    assert seen.state == "lost" and seen.reason == "NodeLost" and "left the queue" in seen.detail


def test_job_gone_from_the_queue_before_its_runner_started_was_cancelled(tmp_path: Path) -> None:
    """A pending job (or array task) scancel'led: no node was lost under it, and it must not be resubmitted as if.
    Only when this controller last saw it waiting: a job it never saw (purged while it was down) may have failed
    to boot or lost its node before its runner started."""
    backend, rundir = backend_with(tmp_path, None)
    (rundir / "started").unlink()
    seen = backend.observe(rundir)
    assert seen.state == "lost" and seen.reason == "NodeLost"
    backend.watcher._last_state[(f"podline:{UID}", None)] = "PENDING"  # as a snapshot showing it waiting records
    seen = backend.observe(rundir)
    assert seen.state == "lost" and seen.reason == "Cancelled" and "before it started" in seen.detail


class FakeSbatch:
    """Failure injection: an sbatch whose answer the test decides (the real one is tested in integration)."""

    def __init__(self, returncode: int) -> None:
        self.returncode, self.calls = returncode, 0

    def submit(self, script: str, directory: Path, meanwhile=lambda: None) -> Result:
        self.calls += 1
        return Result(self.returncode, "77\n" if self.returncode == 0 else "", "")


def test_no_second_submission_while_squeue_cannot_rule_out_the_first(tmp_path: Path) -> None:
    backend, _ = backend_with(tmp_path, None)
    backend.watcher.error = "squeue failed: Socket timed out"
    backend.sbatch = FakeSbatch(0)  # type: ignore[assignment]
    with pytest.raises(SubmitError) as refused:
        backend.submit(tmp_path, "#!/bin/bash\n", f"podline:{UID}", adopt=True)
    assert refused.value.transient and "Socket timed out" in str(refused.value) and backend.sbatch.calls == 0
    assert backend.submit(tmp_path, "#!/bin/bash\n", f"podline:{UID}", adopt=False) == "77"  # a first try may go


def test_an_sbatch_killed_by_a_signal_is_retried_not_failed(tmp_path: Path) -> None:
    backend, _ = backend_with(tmp_path, None)
    backend.sbatch = FakeSbatch(-15)  # type: ignore[assignment]
    with pytest.raises(SubmitError) as refused:
        backend.submit(tmp_path, "#!/bin/bash\n", f"podline:{UID}", adopt=False)
    assert refused.value.transient and "signal 15" in str(refused.value)


def test_a_stopped_runner_waits_for_a_snapshot_newer_than_its_word(tmp_path: Path) -> None:
    """A job submitted just before the last squeue is missing from it: its runner's "Terminated" cannot be told
    from Slurm's cancel until a later snapshot shows the job (or shows it gone)."""
    backend, rundir = backend_with(tmp_path, None)
    backend.watcher.taken_at = time.monotonic() - 0.5  # taken before the runner wrote its final word
    write_json_atomic(rundir / "status.json", TERMINATED)
    assert backend.observe(rundir).state == "running"
    backend.watcher.jobs = parse_squeue(f"42|CANCELLED|None|node7|podline:{UID}")
    backend.watcher.by_id = {job.job_id: job for job in backend.watcher.jobs.values()}
    backend.watcher.taken_at = time.monotonic() + 3600
    seen = backend.observe(rundir)
    assert seen.state == "finished" and seen.status is not None and seen.status["reason"] == "Cancelled"


class OneBackend:
    """The controller's view of its backends, reduced to the one under test."""

    def __init__(self, backend: SlurmBackend) -> None:
        self.backend = backend

    def for_context(self, name: str) -> SlurmBackend:
        return self.backend


def test_a_failing_squeue_is_a_warning_event_not_silence(tmp_path: Path) -> None:
    """squeue failing for good: a runner's "Terminated" waits for a verdict that does not come, the pod stays as
    it was; `describe` must say why (once, not once per pass)."""
    backend, rundir = backend_with(tmp_path, None)
    backend.watcher.taken_at = time.monotonic() - 0.5
    backend.watcher.error = "squeue failed: slurm_load_jobs error: Unable to contact slurm controller"
    write_json_atomic(rundir / "status.json", TERMINATED)
    seen = backend.observe(rundir)
    assert seen.state == "running" and "Unable to contact slurm controller" in seen.doubt
    store = Store(tmp_path / "s.db")
    _, pod = store.apply("Pod", "default", "p", {"spec": {"containers": [{"name": "c", "image": "i"}]}},
                         context="hpc", internal={"run": {"dir": str(rundir)}}, status={"phase": "Running"})
    ctx = Ctx(store, OneBackend(backend), {"cpu": 1000, "memory": 1 << 30, "gpu": 0})  # type: ignore[arg-type]
    for _ in range(3):
        pods._observe(ctx, pod)
    warnings = [e for e in store.events(pod.uid) if e.type == "Warning"]
    assert [e.reason for e in warnings] == ["StatusUnknown"] and "Unable to contact" in warnings[0].message
    assert pod.status["phase"] == "Running"
    backend.watcher.error = ""
    assert backend.observe(rundir).doubt == ""
