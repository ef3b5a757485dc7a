"""What one reconcile pass needs: the store, the backends, this machine's capacity and the pass's clock."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from podline.api.config import image_store, shared_dir
from podline.api.core import ConfigMap, Secret
from podline.api.dataset import Dataset
from podline.backends.base import Backend, Observation
from podline.backends.registry import Backends
from podline.store import Obj, Store

TERMINAL = ("Succeeded", "Failed")


def machine_capacity() -> dict[str, int]:
    """Cores (millicores), memory (bytes) and GPUs this machine offers to pods."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu": int(os.environ.get("PODLINE_CPU_MILLIS", cpus * 1000)),
            "memory": int(os.environ.get("PODLINE_MEMORY_BYTES", memory)),
            "gpu": int(os.environ.get("PODLINE_GPUS", 0))}


@dataclass
class Ctx:
    store: Store
    backends: Backends
    capacity: dict[str, int]
    now: float = field(default_factory=time.time)
    used: dict[str, int] = field(default_factory=lambda: {"cpu": 0, "memory": 0, "gpu": 0})
    next_wake: float | None = None
    fresh_arrays: set[str] = field(default_factory=set)  # recorded in this pass: nothing to adopt yet
    locks: Any = None  # argo_locks.Locks, read from the store by the pass's first workflow that needs it

    def lookup(self, kind: str, namespace: str, name: str) -> ConfigMap | Secret | Dataset | None:
        """A ConfigMap, Secret or Dataset an object refers to, validated (None if missing or being deleted)."""
        found = self.store.get(kind, namespace, name)
        if found is None or found.deleted_at:
            return None
        model = {"ConfigMap": ConfigMap, "Secret": Secret, "Dataset": Dataset}[kind]
        return model.model_validate(found.manifest)

    def backend_for(self, obj: Obj) -> Backend:
        return self.backends.for_context(obj.context)

    def runtime_for(self, obj: Obj) -> dict[str, Any]:
        """The context's container runtime and image settings, as plan_pod/plan_pipeline take them.

        The image cache is node-local: the context's `image_cache`, else `<scratch_dir>/images`, else for the
        local backend `$PODLINE_HOME/images` (on Slurm without either, the runner uses its node's $TMPDIR).
        The image store (`podline image load`) is on the shared directory, where every node sees it.
        """
        home = self.backends.home
        conf = self.backends.config().contexts.get(obj.context)
        if conf is None:
            return {"runtime": "host", "images": {}}
        cache = conf.image_cache or (f"{conf.scratch_dir}/images" if conf.scratch_dir else None)
        if cache is None and conf.backend == "local":
            cache = str(home / "images")
        auth = conf.registry_auth_file or (str(home / "auth.json") if (home / "auth.json").exists() else None)
        return {"runtime": conf.runtime,
                "images": {"cache": cache, "authFile": auth, "insecure": list(conf.insecure_registries),
                           "store": str(image_store(home, conf))}}

    def dirs_for(self, obj: Obj) -> dict[str, str | None]:
        """Shared directory (L3, logs) and node-local scratch (L2, disk workspaces) of the object's context."""
        home = self.backends.home
        conf = self.backends.config().contexts.get(obj.context)
        shared = str(shared_dir(home, conf))
        scratch = conf.scratch_dir if conf and conf.scratch_dir else None
        if scratch is None and self.backend_for(obj).admits_locally:
            scratch = str(home / "scratch")
        return {"shared": shared, "scratch": scratch}

    def wake_at(self, when: float) -> None:
        """Ask for another pass no later than `when` (back-off timers, deadlines, TTLs)."""
        self.next_wake = when if self.next_wake is None else min(self.next_wake, when)

    def event(self, obj: Obj, reason: str, message: str, type_: str = "Normal", once: bool = False) -> None:
        """Record an event; with `once`, not again while the same reason and message are the latest."""
        key = f"{reason}:{message}"
        if once and obj.internal.get("lastEvent") == key:
            return
        obj.internal["lastEvent"] = key
        self.store.add_event(obj.uid, reason, message, type_)

    def fits(self, request: dict[str, int]) -> list[str]:
        """Names of resources that would be over capacity if `request` were admitted now."""
        return [k for k, v in request.items() if v and self.used[k] + v > self.capacity[k]]

    def reserve(self, request: dict[str, Any]) -> None:
        for k, v in request.items():
            self.used[k] += v


def warn_if_unsure(ctx: Ctx, obj: Obj, seen: Observation) -> None:
    """A scheduler that cannot be asked (squeue failing) leaves the object as it last was: say so, once, in a
    Warning event `describe` shows, rather than let a finished pod look running without a word."""
    if seen.doubt:
        ctx.event(obj, "StatusUnknown", f"the scheduler cannot be asked, state may be stale: {seen.doubt}",
                  "Warning", once=True)
