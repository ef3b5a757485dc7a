"""Reconcile one Pod: admit it against capacity, launch its runner, mirror its status, delete it.

Order of writes is what makes crashes harmless: the run directory is recorded (intent) and committed
before the runner is launched; a relaunch of the same directory is a no-op if a runner ever started
there. Observations only ever move status forward.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from podline.api.core import KeySelector, Pod
from podline.api.sidecars import sidecar_names
from podline.backends.base import Backend, SubmitError
from podline.backends.squeue import NEVER_FITS
from podline.controller.context import TERMINAL, Ctx, warn_if_unsure
from podline.controller.job_counts import awaits_count
from podline.plan.pipeline import secret_key
from podline.plan.pod import PlanWaiting, plan_pod, pod_requests
from podline.runtime.files import rfc3339
from podline.store import Obj

RELAUNCH_AFTER = 10.0  # seconds a launched runner may take to take its lock before we launch again
KILL_AFTER_GRACE = 5.0


def _pending(obj: Obj, reason: str, message: str, scheduled: bool, stated: bool = True) -> None:
    """Pending, PodScheduled as `scheduled` (the reason on the condition when not); `stated`: the reason is the
    pod's own too (STATUS shows it), else what the condition says is all (an earlier pass's reason goes)."""
    obj.status["phase"] = "Pending"
    condition = {"type": "PodScheduled", "status": "True" if scheduled else "False"}
    if not scheduled:
        condition.update(reason=reason, message=message)
    obj.status["conditions"] = [condition]
    if stated:
        obj.status["reason"], obj.status["message"] = reason, message
    else:
        obj.status.pop("reason", None)
        obj.status.pop("message", None)


def _plan(ctx: Ctx, obj: Obj) -> dict[str, Any]:
    """The pod's plan with its context's runtime, image cache and checkpoint directories (and, for a
    workflow step, the executor's inputs and outputs its workflow recorded)."""
    dirs = ctx.dirs_for(obj)
    plan = plan_pod(obj.manifest, obj.uid, ctx.lookup, dirs=dirs, **ctx.runtime_for(obj))
    if "argo" in obj.internal:
        plan["argo"] = {**obj.internal["argo"], "scratch": dirs["scratch"],  # its node cache of datasets
                        "inputArtifacts": [_with_credentials(ctx, obj, a) for a in obj.internal["argo"].get(
                            "inputArtifacts", [])]}
    return plan


def _with_credentials(ctx: Ctx, obj: Obj, artifact: dict[str, Any]) -> dict[str, Any]:
    """An input artifact from S3 with its keys read from their Secrets: into the plan (0600) only, never into
    the store's record of the pod; a missing Secret makes the pod wait, as for env."""
    refs = artifact.get("remote", {}).get("secrets")
    if not refs:
        return artifact
    keys = {k: secret_key(ctx.lookup, obj.namespace, KeySelector.model_validate(ref)) for k, ref in refs.items()}
    return {**artifact, "remote": {**artifact["remote"], "credentials": keys}}


def _admit_and_launch(ctx: Ctx, obj: Obj) -> None:
    """Schedule, then prepare, as Kubernetes does: a pod that does not fit waits Unschedulable without its
    plan being built (its requests are kept, so a waiting pod costs a pass almost nothing); one that fits
    but whose plan waits (a missing ConfigMap) is scheduled and waits for that."""
    backend = ctx.backend_for(obj)
    request: dict[str, int] | None = None
    if backend.admits_locally:
        request = obj.internal.get("requests") or pod_requests(Pod.model_validate(obj.manifest))
        obj.internal["requests"] = request  # counted as in use only once `run` is recorded too
        short = ctx.fits(request)
        if short:
            message = f"0/1 nodes are available: {', '.join('Insufficient ' + k for k in short)}."
            _pending(obj, "Unschedulable", message, scheduled=False, stated=False)
            ctx.event(obj, "FailedScheduling", message, "Warning", once=True)
            return
    try:
        plan = _plan(ctx, obj)
    except PlanWaiting as waiting:  # (on Slurm not submitted yet: not scheduled; STATUS says why either way)
        _pending(obj, waiting.reason, waiting.message, scheduled=backend.admits_locally)
        ctx.event(obj, "Failed", f"Error: {waiting.message}", "Warning", once=True)
        return
    if request is not None:
        ctx.reserve(request)
    rundir = backend.run_dir(obj.namespace, obj.name, obj.uid)
    obj.internal["run"] = {"dir": str(rundir), "intentAt": ctx.now}
    if backend.admits_locally:  # this machine is the node: scheduled as it is admitted
        obj.status = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
        ctx.event(obj, "Scheduled", f"Successfully assigned {obj.namespace}/{obj.name} to context {backend.name}")
    else:  # Slurm schedules it: PodScheduled and the Scheduled event come with its node (_observe)
        obj.status = {"phase": "Pending"}
    ctx.store.save(obj)  # intent first, then the side effect
    _launch(ctx, obj, backend, rundir, plan, adopt=False)


def _launch(ctx: Ctx, obj: Obj, backend: Backend, rundir: Path, plan: dict[str, Any], adopt: bool = True) -> None:
    """Launch and record it; a refusal fails the pod with the backend's own words (or retries if transient)."""
    run = obj.internal["run"]
    try:
        backend.launch(rundir, plan, obj.manifest, adopt)
    except SubmitError as refused:
        message = str(refused)
        if refused.transient:
            run["launchedAt"] = ctx.now  # retried as an unstarted attempt after RELAUNCH_AFTER
            ctx.event(obj, "SubmitRetry", message, "Warning", once=True)
            ctx.wake_at(ctx.now + RELAUNCH_AFTER)
            return
        obj.status.update(phase="Failed", reason="SubmitFailed", message=message)
        ctx.event(obj, "SubmitFailed", message, "Warning")
        return
    run["launchedAt"] = ctx.now


def _container_events(ctx: Ctx, obj: Obj, new: dict[str, Any]) -> None:
    old = {c["name"]: c for c in obj.status.get("initContainerStatuses", []) + obj.status.get("containerStatuses", [])}
    sidecars = sidecar_names(obj.manifest["spec"])
    over = new.get("phase") in TERMINAL
    for c in new.get("initContainerStatuses", []) + new.get("containerStatuses", []):
        before = old.get(c["name"], {})
        started = next((s.get("startedAt") for s in c["state"].values() if "startedAt" in s), None)
        seen = next((s.get("startedAt") for s in before.get("state", {}).values() if "startedAt" in s), None)
        if started and started != seen:
            ctx.event(obj, "Started", f"Started container {c['name']}")
        # Every restart waits out a back-off first; one event per restart counted, also when the pass did not
        # see the container waiting (a quick restart falls between two passes)
        if c.get("restartCount", 0) > before.get("restartCount", 0):
            ctx.event(obj, "BackOff", f"Back-off restarting failed container {c['name']}", "Warning")
        waiting = c["state"].get("waiting") or {}
        if waiting.get("reason") == "ImagePullBackOff" and waiting != before.get("state", {}).get("waiting"):
            ctx.event(obj, "BackOff", f"container {c['name']}: {waiting.get('message', '')}", "Warning")
        term = c["state"].get("terminated")
        if not term or before.get("state", {}).get("terminated") == term:
            continue
        if c["name"] in sidecars and over:  # stopped by the runner once the containers were done
            ctx.event(obj, "Killing", f"Stopping container {c['name']}")
        elif term["exitCode"] != 0:
            ctx.event(obj, "Failed", f"Container {c['name']} exited with code {term['exitCode']}"
                      f" ({term['reason']})", "Warning")


DISRUPTIONS = {"NodeLost": "DeletionByTaintManager", "Preempted": "PreemptionByScheduler"}


def _mark_lost(obj: Obj, status: dict[str, Any] | None, detail: str, reason: str) -> dict[str, Any]:
    """The attempt ended without the runner's final word: whatever ran is terminated with 137."""
    status = json.loads(json.dumps(status or obj.status))
    now = rfc3339()
    _end_containers(status, now, "Error", "pod runner was killed")
    _unknown_containers(obj.manifest["spec"], status, now)
    message = "the pod runner died before the pod finished" + (f": {detail}" if detail else "")
    status.update(phase="Failed", reason=reason, message=message)
    return _disrupted(status, now)


def _disrupted(status: dict[str, Any], now: str) -> dict[str, Any]:
    """A pod its node or the scheduler took away carries DisruptionTarget, as Kubernetes marks it (a
    podFailurePolicy may ignore it), whether its runner died with the node or lived to write its last word."""
    if status.get("reason") in DISRUPTIONS:
        status["conditions"] = [c for c in status.get("conditions", []) if c.get("type") != "DisruptionTarget"] + [
            {"type": "DisruptionTarget", "status": "True", "reason": DISRUPTIONS[status["reason"]],
             "message": status.get("message", ""), "lastTransitionTime": now}]
    return status


def _end_containers(status: dict[str, Any], now: str, reason: str, message: str) -> None:
    """Every container of `status` not terminated yet is, with 137 (SIGKILL's code)."""
    for c in status.get("initContainerStatuses", []) + status.get("containerStatuses", []):
        if "terminated" not in c.get("state", {}):
            started = c.get("state", {}).get("running", {}).get("startedAt", now)
            c["state"] = {"terminated": {"exitCode": 137, "reason": reason, "startedAt": started,
                                         "finishedAt": now, "message": message}}
            c["ready"] = False


def _unknown_containers(spec: dict[str, Any], status: dict[str, Any], now: str) -> None:
    """Containers the runner died before reporting on: terminated as the kubelet reports a container it cannot
    find once its pod is over (it may have run: a lost runner cannot say)."""
    for key, specs in (("initContainerStatuses", spec.get("initContainers") or []),
                       ("containerStatuses", spec.get("containers") or [])):
        known = {c["name"] for c in status.get(key, [])}
        missing = [c["name"] for c in specs if c["name"] not in known]
        if not missing:
            continue
        status.setdefault(key, []).extend(
            {"name": name, "ready": False, "restartCount": 0, "started": False,
             "image": next(c.get("image", "") for c in specs if c["name"] == name), "imageID": "",
             "state": {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown", "finishedAt": now,
                                      "message": "The container could not be located when the pod was terminated"}}}
            for name in missing)


def _observe(ctx: Ctx, obj: Obj) -> None:
    backend = ctx.backend_for(obj)
    run = obj.internal["run"]
    rundir = Path(run["dir"])
    seen = backend.observe(rundir)
    if seen.info:
        obj.internal["backend"] = seen.info
    warn_if_unsure(ctx, obj, seen)
    if seen.state == "unstarted":
        if obj.internal.get("array"):
            return  # an index of a job array: its job submits the array
        launched = run.get("launchedAt")
        if launched is None or ctx.now - launched > RELAUNCH_AFTER:
            plan = _plan(ctx, obj)
            _launch(ctx, obj, backend, rundir, plan)
        return
    if seen.state == "queued":
        if (seen.info or {}).get("slurmReason") in NEVER_FITS:  # queued, yet it cannot start as asked: say so
            _pending(obj, "Unschedulable", seen.detail, scheduled=False, stated=False)
            ctx.event(obj, "FailedScheduling", seen.detail, "Warning", once=True)
        else:  # waiting in Slurm's queue: not on a node yet, as a pod the scheduler has not bound
            _pending(obj, "Queued", seen.detail, scheduled=False)
        return
    if seen.state == "lost":
        backend.cancel(rundir, hard=True)
        status = _mark_lost(obj, seen.status, seen.detail, seen.reason or "RunnerLost")
        ctx.event(obj, status["reason"], status["message"], "Warning")
        obj.status = status
        return
    if seen.status is not None and seen.status != obj.status:
        _container_events(ctx, obj, seen.status)
        obj.status = seen.status
        if seen.state == "finished" and seen.status.get("reason") in DISRUPTIONS:  # Slurm's verdict (NODE_FAIL, …)
            obj.status = _disrupted(json.loads(json.dumps(seen.status)), rfc3339())
            ctx.event(obj, obj.status["reason"], obj.status.get("message", ""), "Warning")
        if seen.node and seen.node != obj.internal.get("node") and not backend.admits_locally:
            ctx.event(obj, "Scheduled", f"Successfully assigned {obj.namespace}/{obj.name} to {seen.node}")
        if seen.node:
            obj.internal["node"] = seen.node
    if seen.state == "finished" and obj.status.get("phase") not in TERMINAL:
        obj.status["phase"] = "Failed"  # finished yet not terminal would be a runner bug: don't loop


def _delete(ctx: Ctx, obj: Obj) -> bool:
    """Stop the pod's processes; True once nothing runs and the object can be removed."""
    run = obj.internal.get("run")
    if run is None:
        return True
    backend = ctx.backend_for(obj)
    rundir = Path(run["dir"])
    seen = backend.observe(rundir)
    if seen.state in ("unstarted", "queued") and backend.claim(rundir):
        return True
    if seen.state in ("finished", "lost"):
        backend.cancel(rundir, hard=True)  # leftovers of a killed runner, if any
        return True
    grace = float(obj.manifest["spec"].get("terminationGracePeriodSeconds", 30))
    asked = obj.internal.get("cancelAt")
    if asked is None:
        obj.internal["cancelAt"] = ctx.now
        ctx.event(obj, "Killing", "Stopping pod")
        backend.cancel(rundir)
    elif ctx.now > asked + grace + KILL_AFTER_GRACE:
        backend.cancel(rundir, hard=True)
    ctx.wake_at(ctx.now + 0.5)
    return False


def _final_status_of_deleted(ctx: Ctx, obj: Obj) -> None:
    """How a deleted pod ended, for its Job to count (job_counts.awaits_count): the runner's last word, else
    its containers terminated as the kubelet reports those it cannot find (137, ContainerStatusUnknown)."""
    run = obj.internal.get("run")
    seen = ctx.backend_for(obj).observe(Path(run["dir"])) if run else None
    status = seen.status if seen is not None else None
    if status is not None and status.get("phase") in TERMINAL:
        _container_events(ctx, obj, status)
        obj.status = status
        return
    if seen is not None and seen.state == "lost":
        obj.status = _mark_lost(obj, status, seen.detail, seen.reason or "RunnerLost")
        return
    status, now = json.loads(json.dumps(status or obj.status)), rfc3339()
    _end_containers(status, now, "ContainerStatusUnknown",
                    "The container could not be located when the pod was deleted")
    _unknown_containers(obj.manifest["spec"], status, now)
    status["phase"] = "Failed"
    obj.status = status


def reconcile_pod(ctx: Ctx, obj: Obj) -> None:
    if obj.deleted_at:
        if _delete(ctx, obj):
            if not awaits_count(ctx, obj):
                run = obj.internal.get("run")
                if run:
                    ctx.backend_for(obj).cleanup(Path(run["dir"]), obj.uid)
                ctx.store.remove(obj.uid)
                return
            if obj.status.get("phase") not in TERMINAL:  # its Job counts how it ended before the record goes
                _final_status_of_deleted(ctx, obj)
            ctx.wake_at(ctx.now)  # the Job's turn comes first in the next pass
    elif obj.status.get("phase") in TERMINAL:
        obj.settled = True
    elif "run" not in obj.internal:
        _admit_and_launch(ctx, obj)
    else:
        _observe(ctx, obj)
    if obj.status.get("phase") in TERMINAL and not obj.deleted_at:
        if not obj.settled and "argo" in obj.internal:
            ctx.wake_at(ctx.now)  # a workflow step ended: its workflow starts the next ones in the next pass
        obj.settled = True
        obj.internal.setdefault("finishedAt", ctx.now)
        for stale in ("slurmState", "slurmReason"):  # the queue's last word before the end (describe showed it)
            obj.internal.get("backend", {}).pop(stale, None)
    ctx.store.save(obj)
