"""What a workflow holds besides its pods, taken when it starts and given back when it ends: its locks
(`synchronization`, see controller.argo_locks), the claims of its volumeClaimTemplates (directories on the
shared directory, as Argo's PVCs) and its pilot allocation on Slurm. Kept apart from the walk
(controller.workflows), which only decides when.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from podline.api.pilot import PILOT
from podline.controller.argo_locks import Locks
from podline.controller.argo_scope import DONE
from podline.controller.context import Ctx
from podline.plan.pod import claim_dir
from podline.plan.workflow_pod import claim_name
from podline.store import Obj


def spec_of(wf: Obj) -> dict[str, Any]:
    """The spec the workflow runs: its own, or (with workflowTemplateRef) the merged one its first pass stored."""
    return wf.status.get("storedWorkflowTemplateSpec") or wf.manifest["spec"]


def release_pilot(ctx: Ctx, wf: Obj, delete: bool = False) -> None:
    """The workflow runs no more steps: its pilot allocation (if any) is given back."""
    if PILOT in (wf.manifest["metadata"].get("annotations") or {}):
        ctx.backend_for(wf).release(wf.uid, delete)


def _claims(ctx: Ctx, wf: Obj) -> list[tuple[Path, Path]]:
    """(directory, owner record) of each of the workflow's volumeClaimTemplates claims."""
    shared = str(ctx.dirs_for(wf)["shared"])
    out = []
    for template in spec_of(wf).get("volumeClaimTemplates", []):
        path = Path(claim_dir(shared, wf.namespace, claim_name(wf.name, template)))
        out.append((path, path.parent / ".owners" / path.name))
    return out


def make_claims(ctx: Ctx, wf: Obj) -> str | None:
    """Create the workflow's claims before its first step, each recorded as this workflow's; a claim of that
    name that is not (a user's, another workflow's) fails the workflow, as an existing PVC does in Argo."""
    for path, owner in _claims(ctx, wf):
        owner.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            if not owner.exists() or owner.read_text() != wf.uid:  # else: made by an earlier pass of ours
                return f"claim {path.name} already exists and is not this workflow's"
        owner.write_text(wf.uid)
    return None


def remove_claims(ctx: Ctx, wf: Obj) -> None:
    """The workflow's own claims (as Argo deletes their PVCs); a claim recorded as someone else's stays."""
    for path, owner in _claims(ctx, wf):
        try:
            mine = owner.read_text() == wf.uid
        except OSError:
            mine = False
        if mine:
            shutil.rmtree(path, ignore_errors=True)
            owner.unlink(missing_ok=True)


def collect_claims(ctx: Ctx, wf: Obj, phase: str) -> None:
    """volumeClaimGC: once no step runs, the claims go when the workflow completes (the default) or only when
    it succeeded (OnWorkflowSuccess); otherwise they stay until the workflow is deleted."""
    strategy = spec_of(wf).get("volumeClaimGC", {}).get("strategy", "OnWorkflowCompletion")
    if strategy == "OnWorkflowCompletion" or phase == "Succeeded":
        remove_claims(ctx, wf)


def locks_of(ctx: Ctx) -> Locks:
    if ctx.locks is None:
        ctx.locks = Locks(ctx.store)
    return ctx.locks


def release_locks(ctx: Ctx, wf: Obj, holder: str | None = None) -> None:
    """Give up `holder`'s locks (every one of the workflow's when None); a waiter, of this workflow or another,
    may take them in the next pass."""
    if wf.internal.get("locks") and locks_of(ctx).release(wf, holder):
        ctx.wake_at(ctx.now + 0.05)


def release_all(ctx: Ctx, wf: Obj) -> None:
    release_locks(ctx, wf)
    if "synchronization" in wf.status:
        wf.status["synchronization"] = {}


def release_finished_nodes(ctx: Ctx, wf: Obj) -> None:
    """Locks of nodes that ended outside the walk's own path (the deadline, a tree grown too large): released."""
    nodes = wf.status.get("nodes", {})
    locks = wf.internal.get("locks", {})
    for holder in [h for h in (*locks.get("holding", {}), *locks.get("waiting", {})) if h]:
        if holder not in nodes or nodes[holder]["phase"] in DONE:
            release_locks(ctx, wf, holder)


def workflow_lock(ctx: Ctx, wf: Obj) -> str | None:
    """spec.synchronization: None once the workflow holds its locks, else why it waits (Pending, not started)."""
    sync = spec_of(wf).get("synchronization")
    if not sync:
        return None
    locks = locks_of(ctx)
    return locks.acquire(wf, "", locks.wanted(wf.namespace, sync), ctx.now)
