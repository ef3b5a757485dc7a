"""A Pipeline's status, assembled from its shards' runner reports across attempts.

Each attempt's runner reports only what it did; a resumed attempt reports restored steps with
`restoredFrom`. Merging keeps, per step, the timings of the attempt that actually ran it and the total
number of attempts, and adds each attempt's phase timings to the earlier attempts' (`timingsBase`), so
`describe` tells the whole story of a shard. A shard still in the scheduler's queue lists its steps as Pending.
"""

from __future__ import annotations

from typing import Any

from podline.controller.context import Ctx
from podline.runtime.files import parse_rfc3339, rfc3339
from podline.store import Obj

TIMING_KEYS = ("queue", "image", "stageIn", "compute", "checkpoint", "checkpointWait", "stageOut", "restore")


def merge_attempt(rec: dict[str, Any], status: dict[str, Any], launched_at: float | None) -> None:
    """Fold one attempt's runner status into the shard record (queue time: launch to runner start)."""
    base = rec.get("stepsBase", {})
    steps = rec.setdefault("steps", {})
    for step in status.get("steps", []):
        name = step["name"]
        previous = steps.get(name, {})
        if step.get("restoredFrom") and step["phase"] == "Succeeded" and step.get("attempts", 0) == 0:
            steps[name] = {**previous, "name": name, "phase": "Succeeded", "restoredFrom": step["restoredFrom"],
                           "attempts": previous.get("attempts", 0)}
        elif step.get("attempts", 0) == 0 and previous and step.get("reason") != "ImagePullBackOff":
            continue  # not reached in this attempt: keep what an earlier attempt reported (unless it waits now)
        else:
            steps[name] = {**step, "attempts": base.get(name, 0) + step.get("attempts", 0)}
    rec["phase"] = status.get("phase", rec.get("phase"))
    for key in ("restoredFrom", "checkpoints", "staging", "stageInBytes", "stageOutBytes", "images", "stepRetries"):
        if key in status:
            rec[key] = status[key]
    earlier = rec.get("timingsBase", {})  # what the shard's earlier attempts took: a resumed shard adds to it
    if "timings" in status:
        rec["timings"] = {key: round(earlier.get(key, 0.0) + status["timings"].get(key, 0.0), 3)
                          for key in {*earlier, *status["timings"]}}
    if status.get("reason"):
        rec["reason"], rec["message"] = status["reason"], status.get("message", "")
    else:  # the runner has the word now: a scheduler's "Queued" no longer applies
        rec.pop("reason", None)
        rec.pop("message", None)
    if launched_at is not None and status.get("startTime"):
        queued = max(0.0, parse_rfc3339(status["startTime"]) - launched_at)
        rec["timings"] = {**rec.get("timings", {}), "queue": round(earlier.get("queue", 0.0) + queued, 3)}


def used_budget(rec: dict[str, Any]) -> int:
    """What a shard has used of backoffLimit: its failed attempts and the current attempt's step retries."""
    return rec.get("failures", 0) + rec.get("stepRetries", 0)


def _shard_view(index: str, rec: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {"index": int(index), "phase": rec.get("phase", "Pending"),
                            "attempts": rec.get("attempts", 0), "failures": used_budget(rec)}
    for key in ("node", "restoredFrom", "reason", "message", "checkpoints", "images"):
        if rec.get(key):
            view[key] = rec[key]
    job = rec.get("backend", {}).get("slurmJobId")
    if job:
        view["jobId"] = job
    staged = rec.get("staging") or {"bytesCopied": rec.get("stageInBytes", 0)}  # what this attempt staged in
    view["staging"] = {"filesCopied": 0, "bytesCopied": 0, "filesReused": 0, "bytesReused": 0, **staged,
                       "bytesStagedOut": rec.get("stageOutBytes", 0)}
    return view


def summarize(ctx: Ctx, obj: Obj) -> None:
    """status.phase, shards[], steps[] (flat, with the shard index), timings (max over shards), and staging
    per shard (SPEC's `status.staging`; each shard's view holds it too)."""
    shards = obj.internal.get("shards", {})
    ordered = sorted(shards.items(), key=lambda item: int(item[0]))
    views = [_shard_view(key, rec) for key, rec in ordered]
    waiting = [{"name": step["name"], "phase": "Pending", "attempts": 0} for step in obj.manifest["spec"]["steps"]]
    steps = [{"shard": int(key), **step} for key, rec in ordered  # a queued shard's steps wait, all of them
             for step in (rec.get("steps") or {s["name"]: s for s in waiting}).values()]
    phases = [v["phase"] for v in views]
    final = [bool(rec.get("final")) for _, rec in ordered]
    if phases and all(p == "Succeeded" for p in phases) and all(final):
        phase = "Succeeded"
    elif all(final) and "Failed" in phases:
        phase = "Failed"
    elif "Running" in phases or "Succeeded" in phases or any(rec.get("failures") for _, rec in ordered):
        phase = "Running"  # a shard waiting for its retry has run: the pipeline does not go back to Pending
    else:
        phase = "Pending"
    timings: dict[str, float] = {"queue": 0.0, "image": 0.0}
    for _, rec in ordered:
        for key in TIMING_KEYS:
            timings[key] = max(timings.get(key, 0.0), rec.get("timings", {}).get(key, 0.0))
    staging = [{"index": view["index"], **view["staging"]} for view in views]
    status = {**obj.status, "phase": phase, "shards": views, "steps": steps, "timings": timings, "staging": staging,
              "succeeded": phases.count("Succeeded"), "failed": sum(1 for p, f in zip(phases, final, strict=True)
                                                                    if p == "Failed" and f)}
    status.setdefault("startTime", rfc3339(ctx.now))
    if phase not in ("Succeeded", "Failed"):
        status.pop("completionTime", None)  # scaled up after it had finished
        status.pop("conditions", None)
    elif "completionTime" not in status:
        status["completionTime"] = rfc3339(ctx.now)
    if phase in ("Succeeded", "Failed"):
        status["conditions"] = [_final_condition(phase, views, status["completionTime"])]
    obj.status = status


def _final_condition(phase: str, views: list[dict[str, Any]], at: str) -> dict[str, Any]:
    """Complete or Failed, as an Indexed Job's final condition (`wait --for=condition=Complete|Failed`)."""
    if phase == "Succeeded":
        reason, message = "CompletionsReached", "Reached expected number of succeeded shards"
    else:
        failed = next(v for v in views if v["phase"] == "Failed")
        reason = failed.get("reason") or "BackoffLimitExceeded"
        message = f"shard {failed['index']}: {failed.get('message') or 'failed'}"
    return {"type": "Complete" if phase == "Succeeded" else "Failed", "status": "True", "reason": reason,
            "message": message, "lastProbeTime": at, "lastTransitionTime": at}


def usage(obj: Obj) -> dict[str, int]:
    """Local capacity held by the pipeline's live shards."""
    used = {"cpu": 0, "memory": 0, "gpu": 0}
    for rec in obj.internal.get("shards", {}).values():
        if rec.get("attempt") and not rec.get("final"):
            for key, value in rec.get("requests", {}).items():
                used[key] += value
    return used
