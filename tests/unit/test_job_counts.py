"""A Job's counts only go up, as Kubernetes' finalizer tracking keeps them: each pod's result and each restart is
added once (the pod is marked in the same transaction), whatever happens to the pod afterwards; and the retry
back-off stays a number however many failures there were (2.0 ** 1024 overflows a float)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from podline.controller import job_counts, job_failures, jobs
from podline.store import Obj, Store
from tests.unit.test_job_rules import INDEX, Recorder


class NoArrays:
    """A backend that runs each pod by itself (the local one, as far as the job controller cares)."""

    supports_arrays = False


def _job(store: Store, spec: dict[str, Any], **internal: Any) -> Obj:
    manifest = {"spec": {"parallelism": 2, "completions": 3, "template": {"spec": {"containers": []}}, **spec}}
    _, job = store.apply("Job", "default", "j", manifest, internal=internal)
    return job


def _pod(store: Store, job: Obj, name: str, status: dict[str, Any], index: int | None = None) -> Obj:
    manifest = {"metadata": {"annotations": {INDEX: str(index)} if index is not None else {}}}
    _, pod = store.apply("Pod", "default", name, manifest, owner_uid=job.uid, status=status)
    return pod


def _exited(code: int, restarts: int = 0) -> dict[str, Any]:
    return {"name": "c", "restartCount": restarts, "state": {"terminated": {"exitCode": code}}}


def _tally(store: Store, job: Obj, ctx: Recorder) -> dict[str, Any]:
    """One count over the job's stored pods; the job's record as stored afterwards."""
    job_counts.tally(ctx, job, store.list(kind="Pod", owner_uid=job.uid))  # type: ignore[arg-type]
    stored = store.get_uid(job.uid)
    assert stored is not None
    return stored.internal


def test_the_retry_delay_doubles_up_to_its_cap_and_never_overflows() -> None:
    assert job_failures.retry_delay(1) == job_failures.BACKOFF_BASE
    assert job_failures.retry_delay(3) == min(job_failures.BACKOFF_CAP, 4 * job_failures.BACKOFF_BASE)
    for failures in (1025, 10_000, 10**9):  # 2.0 ** 1024 raised OverflowError
        assert job_failures.retry_delay(failures) == job_failures.BACKOFF_CAP


def test_a_job_past_a_thousand_failures_waits_its_back_off_without_an_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store, {"backoffLimit": 10_000}, failed=2_000, lastFailureAt=1000.0)
    ctx = Recorder(store)
    ctx.backend_for = lambda obj: NoArrays()  # type: ignore[attr-defined]
    jobs.reconcile_job(ctx, job)  # type: ignore[arg-type]
    assert ctx.next_wake == 1000.0 + job_failures.BACKOFF_CAP
    assert store.list(kind="Pod") == []
    assert store.get_uid(job.uid).status["failed"] == 2_000  # type: ignore[union-attr]


def test_failed_pods_count_once_and_stay_counted_once_deleted(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store, {})
    first = _pod(store, job, "a", {"phase": "Failed", "containerStatuses": [_exited(1)]})
    _pod(store, job, "b", {"phase": "Running"})
    ctx = Recorder(store)
    assert _tally(store, job, ctx)["failed"] == 1 and job.internal["lastFailureAt"] == ctx.now
    assert store.get_uid(first.uid).internal[job_counts.COUNTED] == {"phase": "Failed"}  # type: ignore[union-attr]
    changes = store.db.total_changes
    assert _tally(store, job, ctx)["failed"] == 1  # counted once
    assert store.db.total_changes == changes, "nothing new: nothing written"
    store.remove(first.uid)  # deleted by hand
    _pod(store, job, "c", {"phase": "Failed", "containerStatuses": [_exited(2)]})
    internal = _tally(store, job, ctx)
    assert (internal["failed"], internal.get("succeeded", 0)) == (2, 0)


def test_succeeded_indexes_count_once_and_outlive_their_pods(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store, {"completionMode": "Indexed"})
    done = _pod(store, job, "j-0", {"phase": "Succeeded"}, index=0)
    _pod(store, job, "j-2", {"phase": "Succeeded"}, index=2)
    ctx = Recorder(store)
    internal = _tally(store, job, ctx)
    assert (internal["succeeded"], internal["completedIndexes"]) == (2, "0,2")
    store.remove(done.uid)
    _pod(store, job, "j-0-again", {"phase": "Succeeded"}, index=0)  # a second success of a completed index
    internal = _tally(store, job, ctx)
    assert (internal["succeeded"], internal["completedIndexes"]) == (2, "0,2")
    jobs._status(job, [], [])
    assert (job.status["succeeded"], job.status["completedIndexes"]) == (2, "0,2")


def test_on_failure_restarts_are_counted_as_they_happen(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store, {"template": {"spec": {"restartPolicy": "OnFailure", "containers": []}}})
    pod = _pod(store, job, "a", {"phase": "Running", "containerStatuses": [_exited(1, restarts=2)]})
    ctx = Recorder(store)
    assert _tally(store, job, ctx)["failed"] == 2
    pod = store.get_uid(pod.uid)  # type: ignore[assignment]
    pod.status["containerStatuses"] = [_exited(1, restarts=3)]
    store.save(pod)
    assert _tally(store, job, ctx)["failed"] == 3
    store.remove(pod.uid)
    assert _tally(store, job, ctx)["failed"] == 3


def test_pod_failure_policy_decides_each_failure_once(tmp_path: Path) -> None:
    rules = [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
             {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]
    store = Store(tmp_path / "s.db")
    job = _job(store, {"podFailurePolicy": {"rules": rules}})
    _pod(store, job, "ignored", {"phase": "Failed", "containerStatuses": [_exited(3)]})
    ctx = Recorder(store)
    internal = _tally(store, job, ctx)
    assert internal.get("failed", 0) == 0 and "failJob" not in internal
    _pod(store, job, "fatal", {"phase": "Failed", "containerStatuses": [_exited(42)]})
    internal = _tally(store, job, ctx)
    assert internal["failed"] == 1
    assert internal["failJob"] == "Pod default/fatal failed matching the FailJob rule at index 1"


def test_a_success_starts_the_back_off_over(tmp_path: Path) -> None:
    """Kubernetes' back-off record counts the failures since the last success: a Job whose pods fail once each
    and then succeed waits the base delay before every retry, not one doubling with its total failures."""
    store = Store(tmp_path / "s.db")
    job = _job(store, {"backoffLimit": 100})
    ctx = Recorder(store)
    for n in range(3):
        _pod(store, job, f"f{n}", {"phase": "Failed", "containerStatuses": [_exited(1)]})
    assert _tally(store, job, ctx)["backoffFailures"] == 3
    _pod(store, job, "ok", {"phase": "Succeeded"})
    assert _tally(store, job, ctx)["backoffFailures"] == 0
    _pod(store, job, "f3", {"phase": "Failed", "containerStatuses": [_exited(1)]})
    internal = _tally(store, job, ctx)
    assert (internal["backoffFailures"], internal["failed"]) == (1, 4)
    assert job_failures.retry_delay(job_failures.backoff_failures(store.get_uid(job.uid))) == job_failures.BACKOFF_BASE  # type: ignore[arg-type]


def test_ignored_failures_wait_a_back_off_too(tmp_path: Path) -> None:
    """A pod an Ignore rule matched is not counted as failed, but the next one still waits (else a pod failing
    that way would be replaced on every controller pass)."""
    rules = [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [5]}}]
    store = Store(tmp_path / "s.db")
    job = _job(store, {"podFailurePolicy": {"rules": rules}})
    _pod(store, job, "ignored", {"phase": "Failed", "containerStatuses": [_exited(5)]})
    ctx = Recorder(store)
    internal = _tally(store, job, ctx)
    assert internal.get("failed", 0) == 0 and internal["backoffFailures"] == 1 and internal["lastFailureAt"] == ctx.now


def _reconcile(store: Store, job: Obj, ctx: Recorder) -> Obj:
    ctx.backend_for = lambda obj: NoArrays()  # type: ignore[attr-defined]
    jobs.reconcile_job(ctx, store.get_uid(job.uid))  # type: ignore[arg-type]
    stored = store.get_uid(job.uid)
    assert stored is not None
    return stored


def test_a_pod_deleted_by_hand_counts_at_once_and_is_replaced_at_once_by_default(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store, {})
    doomed = _pod(store, job, "a", {"phase": "Running"})
    _pod(store, job, "b", {"phase": "Running"})
    store.mark_deleted(doomed.uid)
    ctx = Recorder(store)
    job = _reconcile(store, job, ctx)
    assert (job.status["failed"], job.status["active"], job.status["terminating"]) == (1, 1, 1)
    ctx.now += job_failures.BACKOFF_CAP  # the failure's back-off
    job = _reconcile(store, job, ctx)
    assert len(store.list(kind="Pod", owner_uid=job.uid)) == 3, "a replacement beside the terminating pod"


def test_with_pod_replacement_policy_failed_a_deleted_pod_counts_and_is_replaced_once_it_has_ended(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store, {"podReplacementPolicy": "Failed"})
    doomed = _pod(store, job, "a", {"phase": "Running"})
    _pod(store, job, "b", {"phase": "Running"})
    store.mark_deleted(doomed.uid)
    ctx = Recorder(store)
    job = _reconcile(store, job, ctx)
    assert (job.status["failed"], job.status["active"], job.status["terminating"]) == (0, 1, 1)
    assert len(store.list(kind="Pod", owner_uid=job.uid)) == 2, "no replacement while it terminates"
    ctx.now += job_failures.BACKOFF_CAP
    job = _reconcile(store, job, ctx)
    assert len(store.list(kind="Pod", owner_uid=job.uid)) == 2, "no replacement while it terminates"
    stored = store.get_uid(doomed.uid)
    assert stored is not None and job_counts.awaits_count(ctx, stored)  # type: ignore[arg-type]
    stored.status = {"phase": "Failed", "containerStatuses": [_exited(143)]}
    store.save(stored)
    job = _reconcile(store, job, ctx)
    assert (job.status["failed"], job.status["terminating"]) == (1, 0)
    ctx.now += job_failures.BACKOFF_CAP
    job = _reconcile(store, job, ctx)
    assert len(store.list(kind="Pod", owner_uid=job.uid)) == 3, "replaced once it ended"
    stored = store.get_uid(doomed.uid)
    assert stored is not None and not job_counts.awaits_count(ctx, stored)  # type: ignore[arg-type]
