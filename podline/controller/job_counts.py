"""What a Job has counted of its pods, as Kubernetes' finalizer tracking makes it: each pod's result (and each
OnFailure restart) is added to running totals in the Job's record once, the pod marked as counted (`COUNTED`
on its internal record) in the same transaction, so a crash neither loses nor repeats a count, deleting a
failed pod buys no retries and deleting a Succeeded pod does not run its index again.

A pod deleted by someone else before it ended is a failure at once, unless the Job replaces only failed pods
(`podReplacementPolicy: Failed`, the default with a `podFailurePolicy`): then, as in Kubernetes, it is counted
once it has ended, by how it ended (SIGTERM's 143 may match an Ignore rule), and no replacement starts before.
The pod reconciler holds such a pod's record (`awaits_count`) until its Job has counted it.
"""

from __future__ import annotations

from podline.api.conditions import decided_condition
from podline.api.names import INDEX_KEY
from podline.controller.context import TERMINAL, Ctx
from podline.controller.job_failures import (
    add_failed_indexes,
    backoff_failures,
    count_index_failure,
    failure_action,
    per_index,
)
from podline.plan.ranges import compress as compress_indexes
from podline.plan.ranges import expand as expand_indexes
from podline.store import Obj

COUNTED = "jobCounted"  # on a pod's internal record: what its Job has counted of it ({"restarts", "phase"})


def pod_index(pod: Obj) -> int | None:
    value = pod.manifest["metadata"].get("annotations", {}).get(INDEX_KEY)
    return int(value) if value is not None else None


def replaces_only_failed(job: Obj) -> bool:
    """podReplacementPolicy Failed: a deleted pod is replaced (and counted) only once it has ended. Kubernetes'
    default is TerminatingOrFailed, Failed when the Job has a podFailurePolicy (the only value it allows then)."""
    spec = job.manifest["spec"]
    default = "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    return spec.get("podReplacementPolicy", default) == "Failed"


def terminating(pods: list[Obj]) -> list[Obj]:
    """Pods deleted that have not ended yet (status.terminating)."""
    return [p for p in pods if p.deleted_at and p.status.get("phase") not in TERMINAL]


def counted(pod: Obj) -> bool:
    return "phase" in pod.internal.get(COUNTED, {})


def awaits_count(ctx: Ctx, pod: Obj) -> bool:
    """Whether a deleted pod's record must stay until its Job has counted how it ended."""
    if pod.owner_uid is None or counted(pod):
        return False
    job = ctx.store.get_uid(pod.owner_uid)
    if job is None or job.kind != "Job" or job.deleted_at or decided_condition(job.status) is not None:
        return False
    return replaces_only_failed(job)


def tally(ctx: Ctx, job: Obj, pods: list[Obj]) -> None:
    """Add to the Job's totals (`internal` succeeded, failed, completedIndexes, failJob) what its pods did since
    they were last counted: a terminal phase once per pod, OnFailure restarts once each. The marks on the pods
    and the new totals are written in one transaction, so a crash neither loses nor repeats a count."""
    spec = job.manifest["spec"]
    indexed = spec.get("completionMode") == "Indexed"
    rules = (spec.get("podFailurePolicy") or {}).get("rules", [])
    on_failure = spec["template"]["spec"].get("restartPolicy", "Never") == "OnFailure"
    only_failed = replaces_only_failed(job)  # then a deleted pod is counted once it has ended, by how it ended
    totals = job.internal
    done: set[int] | None = None
    succeeded = failed = backoff = 0  # backoff: failures the next pod's back-off counts (ignored ones too)
    any_success = False
    marked: list[Obj] = []
    newly_failed: set[int] = set()
    for pod in pods:
        mark = pod.internal.get(COUNTED, {})
        restarts = sum(c.get("restartCount", 0) for c in pod.status.get("containerStatuses", [])) if on_failure else 0
        phase = pod.status.get("phase")
        if pod.deleted_at and phase not in TERMINAL and "phase" not in mark and not only_failed:
            phase = "Deleted"  # by a user, before it ended: a failure (the Job's own deletions are marked)
        ended = (phase in TERMINAL or phase == "Deleted") and "phase" not in mark
        if not ended and restarts <= mark.get("restarts", 0):
            continue  # nothing new: the usual case
        pod.internal[COUNTED] = new = dict(mark)
        marked.append(pod)
        if restarts > mark.get("restarts", 0):
            more = restarts - mark.get("restarts", 0)
            failed, backoff = failed + more, backoff + more
            new["restarts"] = restarts
        if not ended:
            continue
        new["phase"] = phase
        any_success |= phase == "Succeeded"
        if phase == "Succeeded" and not indexed:
            succeeded += 1
        elif phase == "Succeeded":
            done = set(expand_indexes(totals.get("completedIndexes", ""))) if done is None else done
            index = pod_index(pod)
            if index is not None and index not in done:  # an index completes once
                done.add(index)
                succeeded += 1
        else:  # a pod deleted by a user before it ended is a failure, too
            action, fail_job = failure_action(pod, rules) if phase != "Deleted" else ("Count", None)
            failed += action != "Ignore"
            backoff += 1
            if fail_job and not totals.get("failJob"):
                totals["failJob"] = fail_job
            index = pod_index(pod)
            if index is not None and per_index(job) and count_index_failure(job, index, ctx.now, action):
                newly_failed.add(index)
    if not marked:
        return
    add_failed_indexes(job, newly_failed)
    if succeeded:
        totals["succeeded"] = totals.get("succeeded", 0) + succeeded
    if done is not None:
        totals["completedIndexes"] = compress_indexes(list(done))
    if any_success or backoff:  # a success starts the back-off over, as Kubernetes' back-off record does
        totals["backoffFailures"] = (0 if any_success else backoff_failures(job)) + backoff
    if failed:
        totals["failed"] = totals.get("failed", 0) + failed
    if backoff:
        totals["lastFailureAt"] = ctx.now
    with ctx.store.tx():
        for pod in marked:
            ctx.store.save(pod)
        ctx.store.save(job)
