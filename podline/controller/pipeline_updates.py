"""A running Pipeline after `apply` changed its spec: what reaches its live shards, and how.

Runners re-read their plan file (within a second, and before each step), so the update is a rewrite of those
files; the shards' reservations on this machine follow the new requests. A new spec that cannot run yet (it
names something missing) holds the steps not started, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from podline.backends.base import Backend
from podline.controller.context import Ctx
from podline.controller.pipeline_plans import shard_plan, shard_request
from podline.plan.pod import PlanWaiting
from podline.plan.ranges import expand
from podline.runtime.files import read_json, write_json_atomic
from podline.store import Obj

RELAUNCH_AFTER = 10.0  # (as controller.pipelines) when a held update is looked at again


LIVE_PLAN_KEYS = ("steps", "generation", "retries", "activeDeadlineSeconds", "cores")  # what `apply` may change


def push_generation(ctx: Ctx, obj: Obj, backend: Backend) -> None:
    """After `apply` changed the spec: live runners re-read their plan file (within a second, and before each
    step), taking new specs for steps not started yet, the new backoffLimit (`retries`: what it leaves after
    the shard's earlier failures) and activeDeadlineSeconds."""
    if obj.internal.get("planGeneration") == obj.generation:
        return
    if obj.internal.get("planGeneration") is not None:
        try:
            fresh = shard_plan(ctx, obj, backend)
            too_big = _beyond_the_machine(ctx, obj) if backend.admits_locally else None
            if too_big is not None:  # as a pod asking more than any node has: Unschedulable, not run short
                raise PlanWaiting("Unschedulable", too_big)
        except PlanWaiting as waiting:  # the new spec names something missing: running steps keep the old one,
            reason = "FailedScheduling" if waiting.reason == "Unschedulable" else waiting.reason
            ctx.event(obj, reason, waiting.message, "Warning", once=True)  # no step starts on it
            held = f"{waiting.reason}: {waiting.message}"
            rewrite_live_plans(obj, lambda old: {**old, "held": held})
            ctx.wake_at(ctx.now + RELAUNCH_AFTER)
            return
        live = {key: fresh[key] for key in LIVE_PLAN_KEYS if key in fresh}  # (cores: a local shard's only)
        rewrite_live_plans(obj, lambda old: {**{k: v for k, v in old.items() if k != "held"}, **live})
        _hold_new_requests(ctx, obj)
        ctx.event(obj, "Updated", f"generation {obj.generation} applies to the steps not running (a running "
                  "one at its retry; backoffLimit and activeDeadlineSeconds at once)")
    obj.internal["planGeneration"] = obj.generation


def _beyond_the_machine(ctx: Ctx, obj: Obj) -> str | None:
    short = [key for key, amount in shard_request(ctx, obj).items() if amount > ctx.capacity[key]]
    return f"0/1 nodes are available: {', '.join('Insufficient ' + k for k in short)}." if short else None


def _hold_new_requests(ctx: Ctx, obj: Obj) -> None:
    """Live shards hold what the new spec's largest step asks (its steps not started yet run with it): the
    pods and shards admitted after this see the machine as it will be used."""
    live = [rec for rec in obj.internal.get("shards", {}).values()
            if rec.get("requests") and rec.get("attempt") and not rec.get("final")]
    if not live:
        return
    request = shard_request(ctx, obj)
    for rec in live:
        ctx.reserve({k: v - rec["requests"].get(k, 0) for k, v in request.items()})
        rec["requests"] = request


def rewrite_live_plans(obj: Obj, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Rewrite the plan file of every live attempt (and shard): runners re-read it within a second. `held`
    in it holds back the steps not started yet: the spec `apply` gave them cannot be resolved yet, and the
    one it replaced is no longer what the user wants run."""
    for record in obj.internal.get("attempts", {}).values():
        base = Path(record["dir"])
        for path in [base / "plan.json"] + [base / str(i) / "plan.json" for i in expand(record["indexes"])]:
            old = read_json(path)
            new = change(old) if old is not None else None
            if new is not None and new != old:
                write_json_atomic(path, new)
