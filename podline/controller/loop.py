"""The reconcile loop: one pass over every unsettled object, woken by a datagram or a timer.

Passes are cheap (settled objects are skipped by an index; runner status is one small file per active
pod), so the loop wakes on every nudge — from the CLI after a write, from a runner after a state change —
and otherwise at the next timer it was asked for, or every `IDLE_TICK` seconds.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from pathlib import Path

from podline.api.kinds import ARGO_KINDS, CORE_KINDS, build_validators
from podline.backends.registry import Backends
from podline.controller import trash
from podline.controller.context import TERMINAL, Ctx, machine_capacity
from podline.controller.jobs import reconcile_job
from podline.controller.pipeline_status import usage
from podline.controller.pipelines import reconcile_pipeline
from podline.controller.pods import reconcile_pod
from podline.home import wake_address
from podline.runtime.volumes import shm_root
from podline.store import Obj, Store

log = logging.getLogger("podline.controller")
IDLE_TICK = 1.0
ORDER = ("Workflow", "Pipeline", "Job", "Pod")  # owners first: their new pods are reconciled in the same pass
DATA_KINDS = ("ConfigMap", "Secret", "Dataset", "WorkflowTemplate", "ClusterWorkflowTemplate")


class Controller:
    def __init__(self, store: Store, backends: Backends) -> None:
        self.store = store
        self.backends = backends
        self.capacity = machine_capacity()
        self.seen_kinds: set[str] = set()  # kinds a pass had work for (which validators `_warm_up` builds)

    @staticmethod
    def _used(pods: list[Obj], pipelines: list[Obj]) -> dict[str, int]:
        """Capacity held by launched, unfinished pods and by pipelines' live shards (unsettled objects)."""
        used = {"cpu": 0, "memory": 0, "gpu": 0}
        for pod in pods:
            if "requests" in pod.internal and "run" in pod.internal and pod.status.get("phase") not in TERMINAL:
                for key, value in pod.internal.get("requests", {}).items():
                    used[key] += value
        for pipeline in pipelines:
            for key, value in usage(pipeline).items():
                used[key] += value
        return used

    def run_once(self) -> Ctx:
        self.backends.begin_pass()
        # Pods and Pipelines are read once for the capacity in use and reused for their turn in the pass as
        # long as nothing was written since (the common case): decoding every unsettled pod twice per pass
        # was a third of a pass's cost. Any write in between (an owner creating pods, a status change) and
        # the kind is read again, as before.
        prefetched = {"Pod": self.store.list(kind="Pod", unsettled=True),
                      "Pipeline": self.store.list(kind="Pipeline", unsettled=True)}
        read_at = self.store.db.total_changes
        ctx = Ctx(self.store, self.backends, self.capacity, used=self._used(prefetched["Pod"], prefetched["Pipeline"]))
        for kind in ORDER:
            objs = prefetched.pop(kind, None)
            if objs is None or self.store.db.total_changes != read_at:
                objs = self.store.list(kind=kind, unsettled=True)
            if objs:
                self.seen_kinds.add(kind)
            for obj in objs:
                try:
                    if kind == "Workflow":
                        from podline.controller.workflows import reconcile_workflow  # see `_warm_up`

                        reconcile_workflow(ctx, obj)
                    elif kind == "Pipeline":
                        reconcile_pipeline(ctx, obj)
                    elif kind == "Job":
                        reconcile_job(ctx, obj)
                    else:
                        reconcile_pod(ctx, obj)
                except Exception:  # one broken object must not stop the others
                    log.exception("reconcile %s failed", obj.key)
                    ctx.wake_at(ctx.now + 1.0)
        for kind in DATA_KINDS:  # data only: nothing to run
            for obj in self.store.list(kind=kind, unsettled=True):
                self.seen_kinds.add(kind)
                if obj.deleted_at:
                    self.store.remove(obj.uid)
                else:
                    obj.settled = True
                    self.store.save(obj)
        return ctx

    def has_work(self) -> bool:
        return bool(self.store.list(unsettled=True))

    def serve(self, home: Path, stop: list[bool], ready: Path | None = None) -> None:
        """Reconcile until `stop[0]` is set (by a signal handler); touch `ready` once listening."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(wake_address(home))
        sock.setblocking(False)
        if ready is not None:
            ready.touch()
        warm: set[str] = set()
        try:
            while not stop[0]:
                ctx = self.run_once()
                try:
                    self.backends.end_pass()
                    if not warm:  # after the first pass: what `apply` waited on is running (tried once)
                        warm |= CORE_KINDS
                        _warm_up(CORE_KINDS)
                        trash.sweep(shm_root())  # what a controller stopped mid-removal left in RAM
                    if self.seen_kinds & ARGO_KINDS and not warm & ARGO_KINDS:  # the first Argo object
                        warm |= ARGO_KINDS
                        _warm_up(ARGO_KINDS)
                except Exception:  # getting ready for the next pass is an optimisation: never fatal
                    log.exception("preparing the next pass failed")
                timeout = IDLE_TICK if ctx.next_wake is None else max(0.0, min(IDLE_TICK, ctx.next_wake - time.time()))
                readable, _, _ = select.select([sock], [], [], timeout)
                if readable:
                    self._drain(sock)
        finally:
            sock.close()
            self.backends.close()

    @staticmethod
    def _drain(sock: socket.socket) -> None:
        try:
            while sock.recv(64):
                pass
        except BlockingIOError:
            pass


def _warm_up(kinds: frozenset[str]) -> None:
    """What a pass did not need, loaded once it is done rather than before it (the controller answers `apply`
    sooner, and a later manifest check does not pay for it): these kinds' validators and, for Argo's, the
    engine (a tenth of a second of imports). Argo's wait for the first Argo object: a controller that serves
    only pods, jobs and pipelines (most) never builds them."""
    if kinds & ARGO_KINDS:
        import podline.controller.workflows  # noqa: F401 - the Argo engine

    build_validators(kinds)
