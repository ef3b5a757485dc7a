"""Indexed Jobs on a batch scheduler: all remaining indexes become one job array (one `sbatch`).

The index pods are stored together with the job's record of the array (its directory and indexes) in one
transaction, before `sbatch` runs; the submission is tagged with the array's id, so after a crash the next
pass adopts the submitted array instead of submitting it twice. Each pod observes its own array task.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from podline.backends.base import Backend, SubmitError
from podline.controller.context import TERMINAL, Ctx
from podline.plan.pod import PlanWaiting, plan_pod
from podline.store import Obj


def create_array(ctx: Ctx, job: Obj, backend: Backend, indexes: list[int]) -> None:
    from podline.controller.jobs import compress_indexes, pod_manifest

    array_id = str(uuid.uuid4())
    base = backend.run_dir(job.namespace, job.name, array_id)
    with ctx.store.tx():
        for index in indexes:
            name, manifest = pod_manifest(job, index)
            run = {"dir": str(base / str(index)), "intentAt": ctx.now}
            ctx.store.apply("Pod", job.namespace, name, manifest, owner_uid=job.uid, context=job.context,
                            internal={"run": run, "array": array_id})
        job.internal.setdefault("arrays", {})[array_id] = {"dir": str(base), "indexes": compress_indexes(indexes),
                                                           "count": len(indexes)}
        ctx.event(job, "SuccessfulCreate", f"Created {len(indexes)} pods as one job array")
        ctx.store.save(job)


def submit_arrays(ctx: Ctx, job: Obj, backend: Backend) -> None:
    """Submit every recorded array that has no job id yet (adopting one already in the queue)."""
    from podline.controller.jobs import pod_manifest
    from podline.controller.pods import _lookup

    for array_id, record in job.internal.get("arrays", {}).items():
        if record.get("jobId") or record.get("error"):
            continue
        _, template = pod_manifest(job, None)
        try:
            plan = plan_pod(template, array_id, _lookup(ctx), index_env="JOB_COMPLETION_INDEX")
        except PlanWaiting as waiting:
            ctx.event(job, "Failed", f"Error: {waiting.message}", "Warning", once=True)
            continue
        indexes = _expand(record["indexes"])
        try:
            record["jobId"] = backend.launch_array(Path(record["dir"]), plan, job.manifest, indexes)
        except SubmitError as refused:
            if refused.transient:
                ctx.event(job, "SubmitRetry", str(refused), "Warning", once=True)
                ctx.wake_at(ctx.now + 10)
                continue
            record["error"] = str(refused)
            ctx.event(job, "SubmitFailed", str(refused), "Warning")
            _fail_members(ctx, job, array_id, str(refused))
            continue
        ctx.event(job, "Submitted", f"job array {record['jobId']} with {len(indexes)} indexes")


def _fail_members(ctx: Ctx, job: Obj, array_id: str, message: str) -> None:
    for pod in ctx.store.list(kind="Pod", owner_uid=job.uid):
        if pod.internal.get("array") == array_id and pod.status.get("phase") not in TERMINAL:
            pod.status.update(phase="Failed", reason="SubmitFailed", message=message)
            ctx.store.save(pod)


def _expand(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        out.extend(range(int(low), int(high or low) + 1))
    return out


def remove_arrays(ctx: Ctx, job: Obj, backend: Backend) -> None:
    for array_id, record in job.internal.get("arrays", {}).items():
        backend.cleanup(Path(record["dir"]), array_id)
