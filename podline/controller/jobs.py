"""Reconcile one batch/v1 Job the way the Kubernetes job controller does.

Pods are created as stored child objects (owner = the job) in one transaction with the job's status, so a
crash can neither lose nor duplicate a pod; the pod reconciler runs them. Indexed jobs get one pod per
index with `JOB_COMPLETION_INDEX`. Failures count against backoffLimit (restarts of OnFailure pods too), or
each index's against backoffLimitPerIndex (job_failures); new pods after a failure wait an exponential back-off.

Counts only go up, as Kubernetes' finalizer tracking makes them (job_counts: each pod's result once, marked
on the pod in the same transaction). The pods the Job stops itself (scale-down, suspension) never reach a
terminal phase in the store, so they are no failures; those a decided Job stops are counted as failed once
they are gone, as Kubernetes does. A pod deleted by someone else is a failure (so deleting pods buys no
retries), at once, or by how it ended with `podReplacementPolicy: Failed` (the default beside a
podFailurePolicy), which also waits for it to end before replacing it.

Scaling follows Kubernetes too: parallelism below the active pods deletes the excess (pending ones first, then
the highest index and newest; they are made again later). On a scheduler an Indexed Job's pods are array
tasks, so scaling changes the live arrays' throttle instead (0 holds their pending tasks). A Job that meets its
success or failure criteria is decided (SuccessCriteriaMet / FailureTarget) and stops its active pods; once they
are gone its status counts them as failed and takes the final condition (api.conditions).

`suspend: true` deletes the active pods (array tasks too) and sets condition Suspended; the Job has no
startTime while suspended, so activeDeadlineSeconds does not run; resuming sets Suspended False (JobResumed)
and starts the deadline's clock again from then.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from podline.api.batch import index_intervals
from podline.api.conditions import COMPLETIONS_REACHED, FINAL, INTERIM, decided_condition, final_condition
from podline.api.names import INDEX_KEY, random_suffix
from podline.backends.base import Backend, SubmitError
from podline.controller.arrays import (
    cancel_pending_tasks,
    create_array,
    pending_indexes,
    remove_arrays,
    submit_arrays,
)
from podline.controller.context import TERMINAL, Ctx
from podline.controller.job_counts import COUNTED, pod_index, replaces_only_failed, tally, terminating
from podline.controller.job_failures import (
    backoff_failures,
    failed_indexes,
    index_annotations,
    index_verdict,
    past_back_off,
    per_index,
    retry_delay,
)
from podline.plan.ranges import expand as expand_indexes
from podline.runtime.files import rfc3339
from podline.runtime.volumes import shm_root
from podline.store import Obj


def pod_manifest(job: Obj, index: int | None, template_json: str | None = None) -> tuple[str, dict[str, Any]]:
    """The pod for one index (or a NonIndexed pod); pass `template_json` when making many."""
    template = json.loads(template_json or json.dumps(job.manifest["spec"]["template"]))  # a fast deep copy
    meta = template.get("metadata", {})
    labels = {**meta.get("labels", {}), "job-name": job.name, "controller-uid": job.uid,  # the legacy names, and
              "batch.kubernetes.io/job-name": job.name, "batch.kubernetes.io/controller-uid": job.uid}  # ≥ 1.27's
    annotations = dict(meta.get("annotations", {}))
    spec = template["spec"]
    if index is None:
        name = f"{job.name}-{random_suffix()}"
    else:
        name = f"{job.name}-{index}-{random_suffix()}"
        labels[INDEX_KEY] = annotations[INDEX_KEY] = str(index)
        annotations.update(index_annotations(job, index))
        env = {"name": "JOB_COMPLETION_INDEX",
               "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}}
        for container in spec.get("initContainers", []) + spec["containers"]:
            container["env"] = [env] + container.get("env", [])
    metadata = {"name": name[:253], "namespace": job.namespace, "labels": labels, "annotations": annotations}
    return name, {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _finish(ctx: Ctx, job: Obj, kind: str, reason: str, message: str, active: list[Obj]) -> None:
    """The Job met its success or failure criteria: the interim condition, its remaining pods stopped, and the
    final condition at once when there are none (else once they are gone: `_count_stopped`)."""
    job.status.setdefault("conditions", []).append(_condition(INTERIM[kind], reason, message, ctx.now))
    cancel_pending_tasks(job, ctx.backend_for(job))  # also an array whose pods were not made yet (a crash between)
    for pod in active:
        _stop(ctx, pod)
    job.internal["stopping"] = [pod.uid for pod in active]
    _count_stopped(ctx, job, active)


def _success_rule(spec: dict[str, Any], status: dict[str, Any]) -> int | None:
    """The first successPolicy rule the succeeded indexes meet: all of its succeededIndexes, or succeededCount of
    them (of any index without succeededIndexes)."""
    done = set(expand_indexes(status.get("completedIndexes") or ""))
    if not done:  # as Kubernetes' matchSuccessPolicy: nothing succeeded, no rule is met (succeededCount 0 neither)
        return None
    for i, rule in enumerate((spec.get("successPolicy") or {}).get("rules", [])):
        named = {n for low, high in index_intervals(rule["succeededIndexes"]) for n in range(low, high + 1)} \
            if rule.get("succeededIndexes") else None
        met = done if named is None else done & named
        if len(met) >= (rule["succeededCount"] if rule.get("succeededCount") is not None else len(named or ())):
            return i
    return None


def _condition(kind: str, reason: str, message: str, at: float) -> dict[str, Any]:
    now = rfc3339(at)
    return {"type": kind, "status": "True", "reason": reason, "message": message, "lastProbeTime": now,
            "lastTransitionTime": now}


def _count_stopped(ctx: Ctx, job: Obj, pods: list[Obj]) -> None:
    """While the pods a decided Job stopped terminate: none active, they are `terminating`. Once they are gone
    they count as failed (as Kubernetes counts the pods it terminates), the final condition follows the
    interim one, and their checkpoints are not needed any more."""
    stopping = job.internal.get("stopping")
    if stopping is None:  # final already
        return
    # those it stopped, and any other pod deleted before that still ends (by hand, a scale-down)
    left = len({pod.uid for pod in pods if pod.uid in stopping} | {pod.uid for pod in terminating(pods)})
    job.status.update(active=0, ready=0, terminating=left)
    if left:
        return
    del job.internal["stopping"]
    interim = decided_condition(job.status)
    if interim is None or interim["type"] != "SuccessCriteriaMet":  # a succeeded Job's stopped pods are no failures
        job.status["failed"] = job.status.get("failed", 0) + len(stopping)  # (the job controller's rule)
    if interim is not None and interim["type"] in FINAL:  # (a Job stored final at once by an earlier podline is)
        final = FINAL[interim["type"]]
        job.status["conditions"].append(_condition(final, interim["reason"], interim["message"], ctx.now))
        ctx.event(job, *(("Completed", "Job completed", "Normal") if final == "Complete"  # (the job controller's
                         else (interim["reason"], interim["message"], "Warning")))  # recordJobFinished: when final)
        if final == "Complete":
            job.status["completionTime"] = rfc3339(ctx.now)
        job.internal["finishedAt"] = ctx.now
    forget_checkpoints(ctx, job)


def forget_checkpoints(ctx: Ctx, job: Obj) -> None:
    """Checkpoints kept for an index's next pod (pods in pipeline form) are not needed once the Job is over:
    the shared directory's (L3) and this machine's; on Slurm, node-local copies age out with the nodes' scratch."""
    dirs = ctx.dirs_for(job)
    roots = [(shm_root(), f"podline-{job.uid}-*"), (Path(str(dirs["shared"])) / "checkpoints", f"{job.uid}-*")]
    if dirs["scratch"]:
        roots += [(Path(dirs["scratch"]) / "checkpoints", f"{job.uid}-*"),
                  (Path(dirs["scratch"]) / "workspaces", f"podline-{job.uid}-*")]
    for root, pattern in roots:
        for leftover in root.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


def _create_pods(ctx: Ctx, job: Obj, active: list[Obj]) -> None:
    spec = job.manifest["spec"]
    parallelism = spec.get("parallelism", 1)
    completions = spec.get("completions")
    indexed = spec.get("completionMode") == "Indexed"
    failures = backoff_failures(job)
    if failures and not per_index(job):  # else each index waits its own back-off
        ready_at = job.internal.get("lastFailureAt", ctx.now) + retry_delay(failures)
        if ctx.now < ready_at:
            ctx.wake_at(ready_at)
            return
    backend = ctx.backend_for(job)
    room = parallelism - len(active)
    if indexed:
        done = set(expand_indexes(job.internal.get("completedIndexes", "")))
        busy = {pod_index(p) for p in active} | pending_indexes(job)
        missing = sorted(set(range(completions)) - done - busy - failed_indexes(job))
        if per_index(job):
            missing, next_ready = past_back_off(job, missing, ctx.now)
            if next_ready is not None:
                ctx.wake_at(next_ready)
        if backend.supports_arrays:  # one array for all of them; the scheduler throttles it (_throttle_arrays)
            if missing and room > 0:  # a retry array waits for room: the live arrays' unfinished tasks count
                create_array(ctx, job, backend, missing)
            return
        todo: list[int | None] = list(missing[:max(0, room)])
    else:
        succeeded = job.internal.get("succeeded", 0)
        remaining = (completions - succeeded) if completions is not None else (0 if succeeded else parallelism)
        todo = [None] * max(0, min(room, remaining - len(active)))
    for index in todo:
        name, manifest = pod_manifest(job, index)
        ctx.store.apply("Pod", job.namespace, name, manifest, owner_uid=job.uid, context=job.context)
        ctx.event(job, "SuccessfulCreate", f"Created pod: {name}")


def _delete_pods(ctx: Ctx, job: Obj, doomed: list[Obj]) -> None:
    """Pods the Job itself stops (scale-down, suspension): terminated, not counted as failed."""
    for pod in doomed:
        _stop(ctx, pod)
        ctx.event(job, "SuccessfulDelete", f"Deleted pod: {pod.name}")


def _stop(ctx: Ctx, pod: Obj) -> None:
    """Delete a pod the Job stops itself, marked as counted so that `tally` takes it for no failure."""
    pod.internal[COUNTED] = {**pod.internal.get(COUNTED, {}), "phase": "StoppedByJob"}
    ctx.store.save(pod)
    ctx.store.mark_deleted(pod.uid)


def _scale_down(ctx: Ctx, job: Obj, active: list[Obj]) -> list[Obj]:
    """Delete the active pods over parallelism: not-yet-running ones first, then the highest index, the newest;
    the pods left active are returned."""
    excess = len(active) - job.manifest["spec"].get("parallelism", 1)
    if excess <= 0:
        return active
    ranked = sorted(active, key=lambda p: (p.status.get("phase") == "Running", -(pod_index(p) or 0),
                                           -p.created_at))
    _delete_pods(ctx, job, ranked[:excess])
    gone = {pod.uid for pod in ranked[:excess]}
    return [pod for pod in active if pod.uid not in gone]


def _set_suspended(ctx: Ctx, job: Obj, suspended: bool) -> None:
    """Condition Suspended as Kubernetes keeps it: True (JobSuspended) while suspended, then False (JobResumed).
    While suspended the Job has no startTime; resuming starts activeDeadlineSeconds' clock again."""
    conditions = job.status.get("conditions", [])
    current = next((c for c in conditions if c["type"] == "Suspended"), None)
    if suspended:
        job.status.pop("startTime", None)
        job.internal.pop("startedAt", None)
    if (current is not None and current["status"] == "True") == suspended:
        return  # no change (a Job never suspended has no such condition)
    now = rfc3339(ctx.now)
    reason, message = ("JobSuspended", "Job suspended") if suspended else ("JobResumed", "Job resumed")
    condition = {"type": "Suspended", "status": "True" if suspended else "False", "reason": reason,
                 "message": message, "lastProbeTime": now, "lastTransitionTime": now}
    job.status["conditions"] = [c for c in conditions if c["type"] != "Suspended"] + [condition]
    if not suspended:
        job.status.pop("startTime", None)
        job.internal.pop("startedAt", None)
    ctx.event(job, "Suspended" if suspended else "Resumed", message)


def _live_arrays(job: Obj, pods: list[Obj]) -> dict[str, dict[str, Any]]:
    """Arrays that may still have tasks to run: recorded, or with a pod not yet terminal."""
    running = {p.internal.get("array") for p in pods if p.status.get("phase") not in TERMINAL and not p.deleted_at}
    return {array_id: record for array_id, record in job.internal.get("arrays", {}).items()
            if not record.get("error") and (not record.get("podsCreated") or array_id in running)}


def _throttle_arrays(ctx: Ctx, job: Obj, backend: Backend, pods: list[Obj]) -> None:
    """Share the Job's parallelism among its live arrays as their task throttles, oldest first: an array may run
    what the older ones leave of it, their unfinished tasks counted, so a retry array never takes the Job past
    its parallelism (each array used to get all of it). A share of 0 holds the array's pending tasks.

    `internal.throttles` keeps what each array has: one not submitted yet is submitted with its share
    (`%share`), and waits while its share is 0; one submitted without a record (a crash in between) is given it
    once more. A throttle is changed
    only when the limit in effect changes (a throttle above an array's unfinished tasks limits nothing).
    """
    parallelism = job.manifest["spec"].get("parallelism", 1)
    live = _live_arrays(job, pods)
    unfinished = Counter(p.internal.get("array") for p in pods
                         if p.status.get("phase") not in TERMINAL and not p.deleted_at)
    throttles = job.internal["throttles"] = {k: v for k, v in job.internal.get("throttles", {}).items() if k in live}
    budget = parallelism
    for array_id, record in live.items():
        left = unfinished[array_id] if record.get("podsCreated") else record.get("count") or 0
        wanted = min(budget, left)
        budget -= wanted
        if not record.get("jobId"):  # submitted with it (`%wanted`), or not before it has a share (submit_arrays)
            throttles[array_id] = wanted
            continue
        old = throttles.get(array_id)
        if old is not None and min(old, left) == wanted:
            continue
        try:
            backend.throttle_array(record["jobId"], wanted)
        except SubmitError as refused:
            if refused.transient:
                ctx.event(job, "ScaleRetry", str(refused), "Warning", once=True)
                ctx.wake_at(ctx.now + 10)
                continue
            ctx.event(job, "FailedScale", f"job array {record['jobId']}: {refused}", "Warning")
        else:
            done = f"at most {wanted} tasks at a time" if wanted else "pending tasks held"
            ctx.event(job, "Scaled", f"job array {record['jobId']}: {done}")
        throttles[array_id] = wanted


def _status(job: Obj, active: list[Obj], pods: list[Obj]) -> None:
    totals = job.internal
    ready = sum(1 for p in active if p.status.get("phase") == "Running")
    arrays = any(p.internal.get("array") for p in active)  # tasks a throttle holds back are no active pods in
    # Kubernetes; running ones past a lowered parallelism are (Slurm lets them finish)
    counted = max(ready, min(len(active), job.manifest["spec"].get("parallelism", 1))) if arrays else len(active)
    job.status.update(active=counted, succeeded=totals.get("succeeded", 0), failed=totals.get("failed", 0),
                      terminating=len(terminating(pods)), ready=ready)
    if job.manifest["spec"].get("completionMode") == "Indexed":
        job.status["completedIndexes"] = totals.get("completedIndexes", "")
    if per_index(job):
        job.status["failedIndexes"] = totals.get("failedIndexes", "")


def reconcile_job(ctx: Ctx, job: Obj) -> None:
    pods = ctx.store.list(kind="Pod", owner_uid=job.uid)
    if job.deleted_at:
        cancel_pending_tasks(job, ctx.backend_for(job))
        for pod in pods:
            ctx.store.mark_deleted(pod.uid)
        if not pods:
            remove_arrays(ctx, job, ctx.backend_for(job))
            forget_checkpoints(ctx, job)
            ctx.store.remove(job.uid)
            return
        ctx.store.save(job)
        return
    spec = job.manifest["spec"]
    active = [p for p in pods if p.status.get("phase") not in TERMINAL and not p.deleted_at]
    if decided_condition(job.status) is not None:  # decided: pods removed later must not change the counts
        _count_stopped(ctx, job, pods)
        ttl = spec.get("ttlSecondsAfterFinished") if final_condition(job.status) else None
        if ttl is not None:
            expires = job.internal.get("finishedAt", ctx.now) + ttl
            if ctx.now >= expires:
                ctx.store.mark_deleted(job.uid)
                job.deleted_at = ctx.now
            else:
                ctx.wake_at(expires)
        job.settled = spec.get("ttlSecondsAfterFinished") is None and "stopping" not in job.internal
        ctx.store.save(job)
        return
    tally(ctx, job, pods)
    suspended = bool(spec.get("suspend"))
    if suspended:
        cancel_pending_tasks(job, ctx.backend_for(job))  # at once, not task by task (each scancel took seconds)
        _delete_pods(ctx, job, active)
        active = []  # array tasks too, pending or running: each is a pod
    elif not any(p.internal.get("array") for p in active):  # array tasks are throttled instead
        active = _scale_down(ctx, job, active)
    _set_suspended(ctx, job, suspended)
    _status(job, active, pods)
    if not suspended:
        job.status.setdefault("startTime", rfc3339(ctx.now))
        job.internal.setdefault("startedAt", ctx.now)
    deadline = None if suspended else spec.get("activeDeadlineSeconds")
    completions = spec.get("completions")
    succeeded = job.status["succeeded"]
    if job.internal.get("failJob"):
        _finish(ctx, job, "Failed", "PodFailurePolicy", job.internal["failJob"], active)
    elif job.status["failed"] > spec.get("backoffLimit", 6):
        _finish(ctx, job, "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit", active)
    elif deadline is not None and ctx.now >= job.internal["startedAt"] + deadline:
        _finish(ctx, job, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline", active)
    elif (verdict := index_verdict(job)) is not None:
        _finish(ctx, job, "Failed", *verdict, active)
    elif (rule := _success_rule(spec, job.status)) is not None:
        _finish(ctx, job, "Complete", "SuccessPolicy", f"Matched rules at index {rule}", active)
    elif (completions is not None and succeeded >= completions) or (completions is None and succeeded and not active):
        _finish(ctx, job, "Complete", *COMPLETIONS_REACHED, active)
    elif not suspended:
        if deadline is not None:
            ctx.wake_at(job.internal["startedAt"] + deadline)
        ending = terminating(pods) if replaces_only_failed(job) else []  # replaced once they have ended
        _create_pods(ctx, job, active + ending)
        backend = ctx.backend_for(job)
        if backend.supports_arrays:
            _throttle_arrays(ctx, job, backend, pods)
        submit_arrays(ctx, job, backend)
    ctx.store.save(job)
