"""Reconcile one Pipeline: every shard runs as a pipeline-runner attempt until it succeeds or runs out of retries.

An attempt is a directory with one run directory per shard it covers: on the local backend each shard is
a forked runner; on Slurm all shards of an attempt are one job array (one `sbatch`). A shard whose
attempt fails or is lost (runner killed, node failure, time limit) gets a new attempt after a back-off;
that runner resumes from the shard's newest valid checkpoint, so finished steps are not rerun. Failures
(lost attempts and step retries inside the runner) count against `backoffLimit` per shard.

As with pods, intent is stored before the side effect: the attempt and its shards are recorded (and the
Slurm submission marked attempted) before anything is launched; a crash in between is adopted.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from podline.backends.base import Backend, SubmitError
from podline.backends.squeue import NEVER_FITS
from podline.controller.context import TERMINAL, Ctx, warn_if_unsure
from podline.controller.job_failures import retry_delay
from podline.controller.pipeline_plans import home_dir, shard_plan, shard_request
from podline.controller.pipeline_status import merge_attempt, summarize, used_budget
from podline.controller.pipeline_updates import push_generation
from podline.controller.trash import discard
from podline.plan.kubernetes import pipeline_array_job
from podline.plan.pod import PlanWaiting
from podline.plan.ranges import compress, expand
from podline.runtime.files import rfc3339
from podline.runtime.shard_rules import final_failure
from podline.runtime.volumes import shm_root
from podline.store import Obj

RELAUNCH_AFTER = 10.0
KILL_AFTER = 35.0


# --- launching ----------------------------------------------------------------------------------------
def _new_attempt(ctx: Ctx, obj: Obj, backend: Backend, indexes: list[int]) -> None:
    attempt_id = str(uuid.uuid4())
    base = backend.run_dir(obj.namespace, obj.name, attempt_id)
    obj.internal.setdefault("attempts", {})[attempt_id] = {"dir": str(base), "indexes": compress(indexes)}
    for i in indexes:
        rec = obj.internal["shards"][str(i)]
        rec.update(attempt=attempt_id, attempts=rec.get("attempts", 0) + 1, phase="Pending",
                   stepsBase={n: s.get("attempts", 0) for n, s in rec.get("steps", {}).items()})
        rec.pop("launchedAt", None)
        rec.pop("reason", None)
        rec.pop("message", None)
        rec.pop("stepRetries", None)
        rec["timingsBase"] = dict(rec.get("timings", {}))
    ctx.store.save(obj)  # intent first


def _launch_attempts(ctx: Ctx, obj: Obj, backend: Backend) -> None:
    """Launch every recorded attempt not launched yet (after a crash: adopt what was submitted)."""
    shards = obj.internal["shards"]
    for record in obj.internal.get("attempts", {}).values():
        if record.get("launched") or record.get("error"):
            continue
        base = Path(record["dir"])
        indexes = expand(record["indexes"])
        try:
            plan = {**shard_plan(ctx, obj, backend), "owner": str(base)}  # see runtime.orphans
        except PlanWaiting as waiting:  # e.g. a ConfigMap a step's env names is missing: wait for it
            _wait(ctx, obj, indexes, waiting)
            continue
        try:
            if backend.supports_arrays:
                adopt = record.get("attempted", False)
                record["attempted"] = True
                ctx.store.save(obj)
                record["jobId"] = backend.launch_array(base, plan, pipeline_array_job(obj.manifest), indexes, adopt)
                ctx.event(obj, "Submitted", f"job array {record['jobId']} for shards {record['indexes']}")
            else:
                for i in indexes:
                    backend.launch(base / str(i), {**plan, "shard": i}, obj.manifest)
                    shards[str(i)]["launchedAt"] = ctx.now
        except SubmitError as refused:
            if refused.transient:
                ctx.event(obj, "SubmitRetry", str(refused), "Warning", once=True)
                ctx.wake_at(ctx.now + RELAUNCH_AFTER)
                continue
            record["error"] = str(refused)
            ctx.event(obj, "SubmitFailed", str(refused), "Warning")
            for i in indexes:
                shards[str(i)].update(phase="Failed", final=True, reason="SubmitFailed", message=str(refused))
            continue
        record.update(launched=True, launchedAt=ctx.now)
        ctx.store.save(obj)


def _wait(ctx: Ctx, obj: Obj, indexes: list[int], waiting: PlanWaiting) -> None:
    for i in indexes:
        obj.internal["shards"][str(i)].update(phase="Pending", reason=waiting.reason, message=waiting.message)
    ctx.event(obj, waiting.reason, waiting.message, "Warning", once=True)
    ctx.wake_at(ctx.now + RELAUNCH_AFTER)


def _start_shards(ctx: Ctx, obj: Obj, backend: Backend) -> None:
    """Shards without an attempt (first run, or retry after back-off) get one, within local capacity."""
    shards = obj.internal["shards"]
    request: dict[str, int] | None = None  # computed once, and only if a shard is to start here
    idle = [i for i in range(obj.manifest["spec"].get("shards", 1))  # to start now (not in a back-off)
            if not shards[str(i)].get("final") and not shards[str(i)].get("attempt")
            and shards[str(i)].get("retryAt", 0) <= ctx.now]
    if idle:
        try:  # a Dataset, ConfigMap or Secret it names is missing: no shard starts, nor holds capacity, yet
            shard_plan(ctx, obj, backend)
        except PlanWaiting as waiting:
            _wait(ctx, obj, idle, waiting)
            return
    todo = []
    for i in range(obj.manifest["spec"].get("shards", 1)):
        rec = shards[str(i)]
        if rec.get("final") or rec.get("attempt"):
            continue
        if _over_backoff_limit(ctx, obj, str(i), rec, obj.manifest["spec"].get("backoffLimit", 6)):
            continue
        if rec.get("retryAt", 0) > ctx.now:
            ctx.wake_at(rec["retryAt"])
            continue
        if backend.admits_locally:
            request = request or shard_request(ctx, obj)
            short = ctx.fits(request)
            if short:
                rec.update(phase="Pending", reason="Unschedulable",
                           message=f"0/1 nodes are available: {', '.join('Insufficient ' + k for k in short)}.")
                continue
            ctx.reserve(request)
            rec["requests"] = request
        todo.append(i)
    if todo:
        _new_attempt(ctx, obj, backend, todo)


# --- observing ----------------------------------------------------------------------------------------
def _observe(ctx: Ctx, obj: Obj, backend: Backend) -> None:
    spec = obj.manifest["spec"]
    for key, rec in obj.internal["shards"].items():
        attempt_id = rec.get("attempt")
        record = obj.internal.get("attempts", {}).get(attempt_id or "")
        if rec.get("final") or record is None or not record.get("launched"):
            continue
        rundir = Path(record["dir"]) / key
        seen = backend.observe(rundir)
        if seen.info:
            rec["backend"] = seen.info
        warn_if_unsure(ctx, obj, seen)
        if seen.state == "unstarted":
            if not backend.supports_arrays and ctx.now - rec.get("launchedAt", 0) > RELAUNCH_AFTER:
                try:
                    plan = {**shard_plan(ctx, obj, backend), "owner": record["dir"]}
                except PlanWaiting as waiting:  # what it refers to went away meanwhile
                    _wait(ctx, obj, [int(key)], waiting)
                    continue
                backend.launch(rundir, {**plan, "shard": int(key)}, obj.manifest)
                rec["launchedAt"] = ctx.now
            continue
        if seen.state == "queued":
            never = (seen.info or {}).get("slurmReason") in NEVER_FITS  # queued, yet it cannot start as asked
            rec.update(phase="Pending", reason="Unschedulable" if never else "Queued", message=seen.detail)
            if never:
                ctx.event(obj, "FailedScheduling", f"shard {key}: {seen.detail}", "Warning", once=True)
            continue
        if seen.status is not None:
            retried = rec.get("stepRetries", 0)
            merge_attempt(rec, seen.status, record.get("launchedAt"))
            if rec.get("stepRetries", 0) > retried:  # it counts against backoffLimit: say so as it happens
                last = seen.status.get("lastStepRetry") or {}
                what = f"step {last['step']} failed ({last.get('reason')}: {last.get('message')})" if last else \
                    "a step failed"
                ctx.event(obj, "StepRetry", f"shard {key}: {what} and is retried ({used_budget(rec)} of "
                          f"backoffLimit {spec.get('backoffLimit', 6)} used)", "Warning")
            _report_rejected(ctx, obj, key, rec, seen.status.get("rejectedCheckpoints") or [])
            if seen.node:
                rec["node"] = seen.node
        if seen.state == "running":
            rec["phase"] = "Running"
            if rec.pop("reason", None) == "Suspended":
                rec.pop("message", None)
            if (seen.info or {}).get("slurmState") == "SUSPENDED":  # `scontrol suspend`: its steps are stopped
                rec.update(reason="Suspended", message="its Slurm job is suspended (scontrol suspend); it goes on "
                           "when resumed")
        elif seen.state == "finished" and rec.get("phase") == "Succeeded":
            rec["final"] = True
            ctx.event(obj, "ShardSucceeded", f"shard {key} succeeded")
        elif seen.state in ("finished", "lost"):
            reason, message = seen.reason or rec.get("reason") or "Failed", seen.detail or rec.get("message", "")
            if seen.state == "lost":
                backend.cancel(rundir, hard=True)
                reason = seen.reason or "RunnerLost"
                message = "the pipeline runner died before the shard finished" + (f": {seen.detail}" if seen.detail
                                                                                   else "")
            _shard_failed(ctx, obj, key, rec, reason, message, spec.get("backoffLimit", 6))


def _report_rejected(ctx: Ctx, obj: Obj, key: str, rec: dict[str, Any], rejected: list[str]) -> None:
    """A checkpoint copy that failed verification when the shard resumed: a warning, once per copy."""
    for why in rejected:
        if why not in rec.setdefault("rejectedCheckpoints", []):
            rec["rejectedCheckpoints"].append(why)
            ctx.event(obj, "CheckpointInvalid", f"shard {key}: checkpoint {why}; it was deleted and the shard "
                      "resumed from the next valid state (or started over)", "Warning")


def _shard_failed(ctx: Ctx, obj: Obj, key: str, rec: dict[str, Any], reason: str, message: str, limit: int) -> None:
    # The runner's own step retries count against backoffLimit (a sibling rerun after a rewind is no failure);
    # a runner that does not report them: every step attempt past the first in this attempt.
    retried_inside = rec.pop("stepRetries", None)
    if retried_inside is None:
        retried_inside = sum(max(0, s.get("attempts", 0) - rec.get("stepsBase", {}).get(n, 0) - 1)
                             for n, s in rec.get("steps", {}).items())
    rec["failures"] = rec.get("failures", 0) + 1 + retried_inside
    rec.update(attempt=None, reason=reason, message=message)
    rec.pop("requests", None)
    for step in rec.get("steps", {}).values():  # what ran when the runner died ended with it
        if step.get("phase") == "Running":
            step.update(phase="Failed", reason=reason, message=message, finishedAt=rfc3339(ctx.now))
    if final_failure(reason, message):
        rec.update(phase="Failed", final=True)  # a new attempt would only overrun again, or miss it again
        ctx.event(obj, reason, f"shard {key}: {message}", "Warning")
        return
    if _over_backoff_limit(ctx, obj, key, rec, limit):
        return
    delay = retry_delay(rec["failures"])
    rec.update(phase="Pending", retryAt=ctx.now + delay)
    ctx.wake_at(ctx.now + delay)
    ctx.event(obj, "ShardRestart", f"shard {key} {reason}: {message}; resuming from its checkpoints", "Warning")


def _over_backoff_limit(ctx: Ctx, obj: Obj, key: str, rec: dict[str, Any], limit: int) -> bool:
    """A shard with more failures than backoffLimit fails for good (also when `apply` lowered the limit while
    it waited for its retry: a Job's pod failures past the limit end it at once)."""
    if rec.get("failures", 0) <= limit:
        return False
    last = f"{rec.get('reason')}: {rec.get('message')}" if rec.get("reason") else "unknown"
    rec.update(phase="Failed", final=True, reason="BackoffLimitExceeded",
               message=f"shard {key} failed {rec['failures']} time{'s' if rec['failures'] != 1 else ''}; last: {last}")
    rec.pop("retryAt", None)
    ctx.event(obj, "BackoffLimitExceeded", rec["message"], "Warning")
    return True


# --- updates and deletion -----------------------------------------------------------------------------
def _live(obj: Obj) -> list[tuple[str, Path]]:
    out = []
    for key, rec in obj.internal.get("shards", {}).items():
        record = obj.internal.get("attempts", {}).get(rec.get("attempt") or "")
        if record is not None and not rec.get("final"):
            out.append((key, Path(record["dir"]) / key))
    return out


def _delete(ctx: Ctx, obj: Obj, backend: Backend) -> bool:
    """Stop every live shard (SIGTERM / scancel, then hard); True once nothing runs."""
    busy = False
    asked = obj.internal.setdefault("cancelAt", ctx.now)
    for _, rundir in _live(obj):
        seen = backend.observe(rundir)
        if seen.state in ("finished", "lost") or (seen.state in ("unstarted", "queued") and backend.claim(rundir)):
            backend.cancel(rundir, hard=True)
            continue
        busy = True
        backend.cancel(rundir, hard=ctx.now > asked + KILL_AFTER)
    if busy:
        ctx.wake_at(ctx.now + 0.5)
    return not busy


def _cleanup(ctx: Ctx, obj: Obj, backend: Backend) -> None:
    for attempt_id, record in obj.internal.get("attempts", {}).items():
        backend.cleanup(Path(record["dir"]), attempt_id)
    dirs = ctx.dirs_for(obj)
    targets = [Path(str(dirs["shared"])) / "checkpoints" / obj.uid]
    if dirs["scratch"]:
        targets += [Path(dirs["scratch"]) / "checkpoints" / obj.uid]
    for i in range(obj.manifest["spec"].get("shards", 1)):
        targets += [shm_root() / f"podline-{obj.uid}-{i}", shm_root() / f"podline-{obj.uid}-{i}.shm"]
        if dirs["scratch"]:
            targets += [Path(dirs["scratch"]) / "workspaces" / f"podline-{obj.uid}-{i}"]
    for target in targets:  # renamed aside now, removed in the background (`trash`): no pass waits for it
        discard(target)
    home = home_dir(backend, obj)
    discard(home, then_rmdir=home.parent)  # and pods/<namespace>/<name>, unless a pipeline of that name is back


def reconcile_pipeline(ctx: Ctx, obj: Obj) -> None:
    backend = ctx.backend_for(obj)
    if obj.deleted_at:
        if _delete(ctx, obj, backend):
            _cleanup(ctx, obj, backend)
            ctx.store.remove(obj.uid)
            return
        ctx.store.save(obj)
        return
    count = obj.manifest["spec"].get("shards", 1)
    if obj.status.get("phase") in TERMINAL and len(obj.internal.get("shards", {})) >= count:
        obj.settled = True
        ctx.store.save(obj)
        return
    shards = obj.internal.setdefault("shards", {})
    obj.internal.setdefault("home", str(home_dir(backend, obj)))  # where `logs` finds step output
    for i in range(count):
        shards.setdefault(str(i), {"phase": "Pending", "attempts": 0, "failures": 0})
    push_generation(ctx, obj, backend)
    _observe(ctx, obj, backend)
    _start_shards(ctx, obj, backend)
    _launch_attempts(ctx, obj, backend)
    before = json.dumps(obj.status, sort_keys=True)
    summarize(ctx, obj)
    if obj.status.get("phase") in TERMINAL:
        obj.settled = True
        if json.dumps(obj.status, sort_keys=True) != before:
            ctx.event(obj, "Completed" if obj.status["phase"] == "Succeeded" else "Failed",
                      f"pipeline {obj.status['phase'].lower()}", "Normal" if obj.status["phase"] == "Succeeded"
                      else "Warning")
    ctx.store.save(obj)



