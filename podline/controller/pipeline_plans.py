"""A Pipeline's plan for its shards' runners, and what one shard holds on this machine.

Shared by the reconcile loop (controller.pipelines), which launches shards with them, and by the live update of
a running pipeline (controller.pipeline_updates), which rewrites the plans and the reservations after `apply`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from podline.api.core import Pod
from podline.api.pipeline import Pipeline
from podline.backends.base import Backend
from podline.controller.context import Ctx
from podline.plan.kubernetes import pipeline_array_job
from podline.plan.pipeline import peak_cpu_millis, plan_pipeline
from podline.plan.pod import pod_requests
from podline.store import Obj


def home_dir(backend: Backend, obj: Obj) -> Path:
    return backend.run_dir(obj.namespace, obj.name, obj.uid)


def shard_plan(ctx: Ctx, obj: Obj, backend: Backend) -> dict[str, Any]:
    """One plan for every shard (a local runner gets its `shard` set on a copy; an array task learns it
    from Slurm); `retries` per shard is what its earlier attempts left of backoffLimit."""
    limit = obj.manifest["spec"].get("backoffLimit", 6)
    retries = {i: max(0, limit - rec.get("failures", 0)) for i, rec in obj.internal["shards"].items()}
    plan = plan_pipeline(obj.manifest, obj.uid, ctx.lookup, generation=obj.generation,
                         dirs=ctx.dirs_for(obj), shard_dir=str(home_dir(backend, obj) / "shards" / "{shard}"),
                         retries=retries, **ctx.runtime_for(obj))
    if backend.admits_locally:  # the runner starts steps side by side within what the shard holds, no more
        plan["cores"] = -(-shard_request(ctx, obj)["cpu"] // 1000)
    return plan


def shard_request(ctx: Ctx, obj: Obj) -> dict[str, int]:
    """What one shard occupies on this machine: its largest step (plus a RAM workspace), or what its steps side
    by side use (up to the machine's cores), at least one core."""
    job = pipeline_array_job(obj.manifest)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": obj.name}, "spec": job["spec"]["template"]["spec"]}
    request = pod_requests(Pod.model_validate(pod))
    side_by_side = min(peak_cpu_millis(Pipeline.model_validate(obj.manifest).spec), ctx.capacity["cpu"])
    request["cpu"] = max(1000, request["cpu"], side_by_side)
    return request
