"""Indexed Jobs on a batch scheduler: all remaining indexes become one job array (one `sbatch`).

The index pods are stored together with the job's record of the array (its directory and indexes) in one
transaction, before `sbatch` runs; the submission is tagged with the array's id, so after a crash the next
pass adopts the submitted array instead of submitting it twice. Each pod observes its own array task.

The one plan template carries the metadata of every index's pod, so that each task's downward API shows
its own pod (name, labels, annotations). Those pods are created only after the submission, so their names
are a function of the array's id and the index (`member_name`): the plan and the pods agree, also when a
pass after a crash adopts the array and creates the pods.

The plan's uid is the array's id: the pods' own uids are drawn by the store only when they are created, after
the submission. So what a task keeps apart from the other tasks on its node is keyed by that id and its index
(its RAM-backed volumes: `runtime.volumes.memory_key`), and the downward API's `metadata.uid` is the array's id.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from podline.api.names import member_name, member_uid
from podline.backends.base import Backend, SubmitError
from podline.controller.context import Ctx
from podline.plan.pod import PlanWaiting, plan_pod
from podline.plan.ranges import compress, expand
from podline.store import Obj


def create_array(ctx: Ctx, job: Obj, backend: Backend, indexes: list[int]) -> None:
    """Record the array (its id, directory, indexes) on the job: the intent that submission follows."""
    array_id = str(uuid.uuid4())
    base = backend.run_dir(job.namespace, job.name, array_id)
    job.internal.setdefault("arrays", {})[array_id] = {
        "dir": str(base), "indexes": compress(indexes), "count": len(indexes), "podsCreated": False,
        "attempted": True}  # the intent and the attempt in one commit; this pass knows it is not submitted yet
    ctx.fresh_arrays.add(array_id)
    ctx.store.save(job)


def pending_indexes(job: Obj) -> set[int]:
    """Indexes recorded in arrays whose pods do not exist yet (they count as busy)."""
    return {i for record in job.internal.get("arrays", {}).values() if not record.get("podsCreated")
            for i in expand(record["indexes"])}


# Downward-API fields that differ between an array's index pods: with none in the template, the plan carries only
# the rule for their names (a thousand tasks' metadata would cost P1's submission milliseconds).
METADATA_FIELDS = ("metadata.name", "metadata.uid", "metadata.labels", "metadata.annotations")


def submit_arrays(ctx: Ctx, job: Obj, backend: Backend) -> None:
    """Submit every recorded array without a job id (adopting one already queued), then store its pods."""
    for array_id, record in job.internal.get("arrays", {}).items():
        if not record.get("jobId") and job.internal.get("throttles", {}).get(array_id) == 0:
            continue  # no share of the parallelism now (jobs._throttle_arrays): its tasks would run past it
        if not record.get("jobId") and not record.get("error"):
            try:
                plan = _array_plan(ctx, job, array_id, record)
            except PlanWaiting as waiting:
                ctx.event(job, "Failed", f"Error: {waiting.message}", "Warning", once=True)
                continue
            if not _submit(ctx, job, backend, array_id, record, plan):
                continue
        if not record.get("podsCreated"):
            _create_members(ctx, job, array_id, record)


def _array_plan(ctx: Ctx, job: Obj, array_id: str, record: dict) -> dict[str, Any]:
    """The plan template of the array, with the metadata of each index's pod for the downward API."""
    from podline.controller.jobs import pod_manifest

    _, template = pod_manifest(job, None)
    template_json = json.dumps(job.manifest["spec"]["template"])
    members = None
    if any(f'"{field}' in template_json for field in METADATA_FIELDS):  # else only names differ: a rule says them
        members = {index: member_pod(job, array_id, index, template_json)[1]["metadata"]
                   for index in expand(record["indexes"])}
    return plan_pod(template, array_id, ctx.lookup, index_env="JOB_COMPLETION_INDEX", dirs=ctx.dirs_for(job),
                    members=members, index_names=(job.name, array_id), **ctx.runtime_for(job))


def member_pod(job: Obj, array_id: str, index: int, template_json: str) -> tuple[str, dict[str, Any]]:
    """The pod of one index of an array (see `jobs.pod_manifest`), named by `member_name`."""
    from podline.controller.jobs import pod_manifest

    _, manifest = pod_manifest(job, index, template_json)
    name = member_name(job.name, array_id, index)
    manifest["metadata"]["name"] = name
    return name, manifest


def _submit(ctx: Ctx, job: Obj, backend: Backend, array_id: str, record: dict, plan: dict) -> bool:
    indexes = expand(record["indexes"])
    # an earlier pass may have died right after its sbatch: look for the tagged job before submitting again
    adopt = record.get("attempted", False) and array_id not in ctx.fresh_arrays
    if not record.get("attempted"):
        record["attempted"] = True
        ctx.store.save(job)  # the attempt is recorded before the side effect
    try:
        share = job.internal.get("throttles", {}).get(array_id, job.manifest["spec"].get("parallelism", 1))
        throttled = {**job.manifest, "spec": {**job.manifest["spec"], "parallelism": share}}  # %share
        record["jobId"] = backend.launch_array(Path(record["dir"]), plan, throttled, indexes, adopt)
    except SubmitError as refused:
        if refused.transient:
            ctx.event(job, "SubmitRetry", str(refused), "Warning", once=True)
            ctx.wake_at(ctx.now + 10)
            return False
        record["error"] = str(refused)
        ctx.event(job, "SubmitFailed", str(refused), "Warning")
        return True  # its pods are created and failed, so the job's back-off and limit apply
    with ctx.store.tx():  # the job id is on record before anything else happens
        ctx.event(job, "Submitted", f"job array {record['jobId']} with {len(indexes)} indexes")
        ctx.store.save(job)
    return True


def _create_members(ctx: Ctx, job: Obj, array_id: str, record: dict) -> None:
    """One pod object per index of a submitted array, all in one transaction with the job's record."""
    base = record["dir"]
    template_json = json.dumps(job.manifest["spec"]["template"])
    status = {"phase": "Failed", "reason": "SubmitFailed", "message": record["error"]} if record.get("error") else {}
    pods = []
    indexes = expand(record["indexes"])
    for index in indexes:
        name, manifest = member_pod(job, array_id, index, template_json)
        pods.append((name, manifest, {"run": {"dir": f"{base}/{index}", "intentAt": ctx.now}, "array": array_id}))
    with ctx.store.tx():
        ctx.store.create_many("Pod", job.namespace, pods, owner_uid=job.uid, context=job.context, status=status,
                              uids=[member_uid(array_id, index) for index in indexes])
        record["podsCreated"] = True
        ctx.store.save(job)
    if record.get("error"):
        ctx.event(job, "SuccessfulCreate", f"Created {len(pods)} pods, failed: their job array was refused")
    else:
        ctx.event(job, "SuccessfulCreate", f"Created {len(pods)} pods for job array {record['jobId']}")


def cancel_pending_tasks(job: Obj, backend: Backend) -> None:
    """The Job is over (finished, deleted) or suspended: the tasks of its arrays that have not started never will; one
    scancel per array, before its running tasks are stopped one by one (a task the throttle let start meanwhile
    ran after the Job had ended). Done once per array."""
    if not backend.supports_arrays:
        return
    for record in job.internal.get("arrays", {}).values():
        if record.get("jobId") and not record.get("pendingCancelled") and backend.cancel_pending(record["jobId"]):
            record["pendingCancelled"] = True


def remove_arrays(ctx: Ctx, job: Obj, backend: Backend) -> None:
    for array_id, record in job.internal.get("arrays", {}).items():
        backend.cleanup(Path(record["dir"]), array_id)
