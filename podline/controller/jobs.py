"""Reconcile one batch/v1 Job the way the Kubernetes job controller does.

Pods are created as stored child objects (owner = the job) in one transaction with the job's status, so a
crash can neither lose nor duplicate a pod; the pod reconciler runs them. Indexed jobs get one pod per
index with `JOB_COMPLETION_INDEX`. Failures count against backoffLimit (restarts of OnFailure pods too);
new pods after a failure wait an exponential back-off.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from podline.api.names import INDEX_KEY, random_suffix
from podline.controller.arrays import create_array, pending_indexes, remove_arrays, submit_arrays
from podline.controller.context import TERMINAL, Ctx
from podline.plan.ranges import compress as compress_indexes
from podline.runtime.files import rfc3339
from podline.runtime.volumes import shm_root
from podline.store import Obj

BACKOFF_BASE = float(os.environ.get("PODLINE_JOB_BACKOFF_SECONDS", "1"))
BACKOFF_CAP = 360.0


def pod_manifest(job: Obj, index: int | None, template_json: str | None = None) -> tuple[str, dict[str, Any]]:
    """The pod for one index (or a NonIndexed pod); pass `template_json` when making many."""
    template = json.loads(template_json or json.dumps(job.manifest["spec"]["template"]))  # a fast deep copy
    meta = template.get("metadata", {})
    labels = {**meta.get("labels", {}), "job-name": job.name, "controller-uid": job.uid}
    annotations = dict(meta.get("annotations", {}))
    spec = template["spec"]
    if index is None:
        name = f"{job.name}-{random_suffix()}"
    else:
        name = f"{job.name}-{index}-{random_suffix()}"
        labels[INDEX_KEY] = annotations[INDEX_KEY] = str(index)
        env = {"name": "JOB_COMPLETION_INDEX",
               "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}}
        for container in spec.get("initContainers", []) + spec["containers"]:
            container["env"] = [env] + container.get("env", [])
    metadata = {"name": name[:253], "namespace": job.namespace, "labels": labels, "annotations": annotations}
    return name, {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _pod_index(pod: Obj) -> int | None:
    value = pod.manifest["metadata"].get("annotations", {}).get(INDEX_KEY)
    return int(value) if value is not None else None


def _failures(pods: list[Obj], policy: str, rules: list[dict[str, Any]]) -> tuple[int, str | None]:
    """Failures counted against backoffLimit, and why the Job must fail now (a FailJob rule matched).
    `podFailurePolicy` rules decide per failed pod, first match wins: Ignore (not counted: a node lost or a
    pre-emption, say), FailJob, Count; a pod no rule matches counts."""
    failed, fail_job = 0, None
    for pod in pods:
        if pod.status.get("phase") != "Failed":
            continue
        matched = next(((i, r) for i, r in enumerate(rules) if _rule_matches(r, pod.status)), None)
        action = matched[1]["action"] if matched else "Count"
        if action == "FailJob" and fail_job is None:
            fail_job = f"Pod {pod.namespace}/{pod.name} failed matching the FailJob rule at index {matched[0]}"
        failed += action != "Ignore"
    if policy == "OnFailure":
        failed += sum(c.get("restartCount", 0) for p in pods for c in p.status.get("containerStatuses", []))
    return failed, fail_job


def _rule_matches(rule: dict[str, Any], status: dict[str, Any]) -> bool:
    codes = rule.get("onExitCodes")
    if codes is not None:  # any (or the named) container that failed with a code In / NotIn the values
        for c in status.get("containerStatuses", []) + status.get("initContainerStatuses", []):
            code = c.get("state", {}).get("terminated", {}).get("exitCode")
            if code in (None, 0) or codes.get("containerName") not in (None, c["name"]):
                continue
            if (code in codes["values"]) == (codes["operator"] == "In"):
                return True
        return False
    wanted = {(c["type"], c.get("status", "True")) for c in rule.get("onPodConditions", [])}
    return any((c.get("type"), c.get("status")) in wanted for c in status.get("conditions", []))


def _finish(ctx: Ctx, job: Obj, kind: str, reason: str, message: str, active: list[Obj]) -> None:
    now = rfc3339(ctx.now)
    job.status.setdefault("conditions", []).append(
        {"type": kind, "status": "True", "reason": reason, "message": message,
         "lastProbeTime": now, "lastTransitionTime": now})
    if kind == "Complete":
        job.status["completionTime"] = now
    job.internal["finishedAt"] = ctx.now
    ctx.event(job, reason, message, "Normal" if kind == "Complete" else "Warning")
    for pod in active:
        ctx.store.mark_deleted(pod.uid)
    if not active:
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


def _create_pods(ctx: Ctx, job: Obj, pods: list[Obj], active: list[Obj], failures: int) -> None:
    spec = job.manifest["spec"]
    parallelism = spec.get("parallelism", 1)
    completions = spec.get("completions")
    indexed = spec.get("completionMode") == "Indexed"
    if failures:
        ready_at = job.internal.get("lastFailureAt", ctx.now) + min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1))
        if ctx.now < ready_at:
            ctx.wake_at(ready_at)
            return
    backend = ctx.backend_for(job)
    room = parallelism - len(active)
    if indexed:
        done = {_pod_index(p) for p in pods if p.status.get("phase") == "Succeeded"}
        busy = {_pod_index(p) for p in active} | pending_indexes(job)
        missing = sorted(set(range(completions)) - done - busy)
        if backend.supports_arrays:  # one array for all of them; the scheduler throttles with %parallelism
            if missing:
                create_array(ctx, job, backend, missing)
            return
        todo: list[int | None] = list(missing[:max(0, room)])
    else:
        succeeded = sum(1 for p in pods if p.status.get("phase") == "Succeeded")
        remaining = (completions - succeeded) if completions is not None else (0 if succeeded else parallelism)
        todo = [None] * max(0, min(room, remaining - len(active)))
    for index in todo:
        name, manifest = pod_manifest(job, index)
        ctx.store.apply("Pod", job.namespace, name, manifest, owner_uid=job.uid, context=job.context)
        ctx.event(job, "SuccessfulCreate", f"Created pod: {name}")


def _status(job: Obj, pods: list[Obj], active: list[Obj], failures: int) -> None:
    spec = job.manifest["spec"]
    succeeded = [p for p in pods if p.status.get("phase") == "Succeeded"]
    job.status.update(active=len(active), succeeded=len(succeeded), failed=failures,
                      ready=sum(1 for p in active if p.status.get("phase") == "Running"))
    if spec.get("completionMode") == "Indexed":
        indexes = [i for i in (_pod_index(p) for p in succeeded) if i is not None]
        job.status["completedIndexes"] = compress_indexes(indexes)


def _is_finished(job: Obj) -> bool:
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
               for c in job.status.get("conditions", []))


def reconcile_job(ctx: Ctx, job: Obj) -> None:
    pods = ctx.store.list(kind="Pod", owner_uid=job.uid)
    if job.deleted_at:
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
    policy = spec["template"]["spec"].get("restartPolicy", "Never")
    failures, fail_job = _failures(pods, policy, (spec.get("podFailurePolicy") or {}).get("rules", []))
    if _is_finished(job):  # status is final: pods removed later must not change the counts
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is not None:
            expires = job.internal.get("finishedAt", ctx.now) + ttl
            if ctx.now >= expires:
                ctx.store.mark_deleted(job.uid)
                job.deleted_at = ctx.now
            else:
                ctx.wake_at(expires)
        job.settled = ttl is None and not active
        ctx.store.save(job)
        return
    if failures > job.status.get("failed", 0):
        job.internal["lastFailureAt"] = ctx.now
    _status(job, pods, active, failures)
    job.status.setdefault("startTime", rfc3339(ctx.now))
    job.internal.setdefault("startedAt", ctx.now)
    deadline = spec.get("activeDeadlineSeconds")
    completions = spec.get("completions")
    succeeded = job.status["succeeded"]
    if fail_job is not None:
        _finish(ctx, job, "Failed", "PodFailurePolicy", fail_job, active)
    elif failures > spec.get("backoffLimit", 6):
        _finish(ctx, job, "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit", active)
    elif deadline is not None and ctx.now >= job.internal["startedAt"] + deadline:
        _finish(ctx, job, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline", active)
    elif (completions is not None and succeeded >= completions) or (completions is None and succeeded and not active):
        _finish(ctx, job, "Complete", "Completed", "Job completed", active)
    else:
        if deadline is not None:
            ctx.wake_at(job.internal["startedAt"] + deadline)
        if not spec.get("suspend"):
            _create_pods(ctx, job, pods, active, failures)
            submit_arrays(ctx, job, ctx.backend_for(job))
    ctx.store.save(job)
