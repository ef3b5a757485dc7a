"""The pod runner: executes one pod attempt from its run directory and reports through files.

Run directory contract (shared by every backend; on Slurm it lives on the shared directory):
  plan.json     the plan written by the controller (mode 0600: it may hold secret values)
  lock          held (flock) by the live runner for its whole life: "is it alive?" is one flock probe
  started       written once under the lock: a second runner for the same attempt exits at once,
                so a launch repeated after a controller crash never runs the pod twice
  status.json   Kubernetes-shaped pod status, rewritten atomically on every change; `finished` is
                true once the runner is done and will change nothing more
  logs/NAME.log stdout+stderr of each container (appended across restarts)

Init containers run one after another; then all containers run together. Exit codes, restarts
(restartPolicy with exponential back-off), activeDeadlineSeconds, emptyDir sizeLimit and SIGTERM (with
the pod's grace period) are handled here, so every backend has the same semantics.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podline.api.sidecars import is_sidecar
from podline.runtime import argo_io, attempt_marks
from podline.runtime.container import ContainerWorker, terminate_all
from podline.runtime.engine import Engine, ImagePullFailed
from podline.runtime.expand import container_env, expand, host_ip, own_pod
from podline.runtime.files import notify_address, rfc3339, stop_requested, write_json_atomic, write_status
from podline.runtime.forwarding import forward_signals
from podline.runtime.pipeline import PipelineRunner
from podline.runtime.pod_workspace import PodWorkspace
from podline.runtime.processes import become_subreaper
from podline.runtime.slurm_accounting import account_as_cancelled
from podline.runtime.volumes import VolumeError, Volumes
from podline.runtime.workspace import scratch_root

CHECK_INTERVAL = 1.0
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Pod was active on the node longer than the specified deadline")


class PodRunner:
    def __init__(self, plan: dict[str, Any], rundir: Path, index: int | None = None) -> None:
        self.plan, self.rundir = plan, rundir
        name = plan.get("indexEnv")
        self.index_vars = {name: str(index)} if name and index is not None else {}
        self.pod = own_pod(plan["pod"], self.index_vars)
        self.stopping = threading.Event()
        self.changed = threading.Event()
        self.stop_reason: tuple[str, str] | None = None
        self.volumes = Volumes(plan["volumes"], rundir, self.pod["uid"], self.index_vars)
        self.engine = Engine(plan, self.pod, self.volumes.paths, rundir, self.volumes.memory_root / "_shm")
        self.inits = [self._worker(c, True) for c in plan["initContainers"]]
        self.mains = [self._worker(c, False) for c in plan["containers"]]
        self.workspace = (PodWorkspace(plan, index, self.log, given_up=lambda: stop_requested(rundir))
                          if plan.get("workspace") else None)
        for worker in self.inits + self.mains if self.workspace else []:
            worker.before_restart = self.workspace.rewind
        self.argo: dict[str, Any] | None = plan.get("argo")  # a workflow step: Argo's executor duties
        self.outputs: dict[str, Any] | None = None
        if self.argo and self.argo.get("result"):
            for worker in self.mains:
                if worker.spec["name"] == self.argo["container"]:
                    worker.stdout_copy = rundir / "logs" / f"{worker.spec['name']}.stdout"
        self.start_time = rfc3339()
        self.phase = "Pending"
        self.initialized = not self.inits
        self._transitions: dict[str, tuple[str, str]] = {}
        self.notify_address = notify_address(plan)

    def log(self, message: str) -> None:
        print(f"{rfc3339()} pod {self.pod['name']}: {message}", file=sys.stderr, flush=True)

    def _resolve(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Final env and argv of a container: Kubernetes `$(VAR)` expansion over the complete env."""
        env = container_env(spec["env"], self.index_vars)
        return {**spec, "env": env, "command": [expand(a, env) for a in spec["command"]],
                "args": [expand(a, env) for a in spec["args"]]}

    def _worker(self, spec: dict[str, Any], is_init: bool) -> ContainerWorker:
        # a sidecar has a stop of its own: it outlives the containers, and the runner retires it after them
        stopping = threading.Event() if is_init and is_sidecar(spec) else self.stopping
        return ContainerWorker(self._resolve(spec), self.engine, self.plan["restartPolicy"], is_init, self.rundir,
                               stopping, self.changed.set)

    @property
    def sidecars(self) -> list[ContainerWorker]:
        return [w for w in self.inits if w.sidecar]

    def _retire_sidecars(self) -> None:
        """The containers are done (or the pod stops): the sidecars are stopped (SIGTERM, then SIGKILL after the
        grace period), as the kubelet does; their exit codes do not count."""
        sidecars = list(reversed(self.sidecars))
        for worker in sidecars:
            worker.stopping.set()
        running = [w for w in sidecars if w.is_alive()]
        if running:  # one grace period for them all, as the kubelet shares the pod's among them
            terminate_all(running, float(self.plan["terminationGracePeriodSeconds"]))

    # --- status ---------------------------------------------------------------------------------
    def _conditions(self) -> list[dict[str, Any]]:
        """Pod conditions; lastTransitionTime moves only when a condition's status flips."""
        ready = self.phase == "Running" and all(w.snapshot()["ready"] for w in self.mains)
        done_reason = "PodCompleted" if self.phase in ("Succeeded", "Failed") else "ContainersNotReady"
        wanted = [("PodScheduled", True, None), ("Initialized", self.initialized, "ContainersNotInitialized"),
                  ("ContainersReady", ready, done_reason), ("Ready", ready, done_reason)]
        out = []
        for kind, ok, reason in wanted:
            value = "True" if ok else "False"
            previous = self._transitions.get(kind)
            if previous is None or previous[0] != value:
                self._transitions[kind] = (value, rfc3339())
            cond = {"type": kind, "status": value, "lastTransitionTime": self._transitions[kind][1]}
            if reason and not ok:
                cond["reason"] = reason
            out.append(cond)
        return out

    def write_status(self, finished: bool = False) -> None:
        status: dict[str, Any] = {"phase": self.phase, "startTime": self.start_time,
                                  "conditions": self._conditions(), "hostIP": host_ip(), "podIP": host_ip(),
                                  "containerStatuses": [w.snapshot() for w in self.mains]}
        if self.inits:
            status["initContainerStatuses"] = [w.snapshot() for w in self.inits]
        if self.stop_reason:
            status["reason"], status["message"] = self.stop_reason
        if self.workspace is not None:
            status["restoredFrom"] = self.workspace.restored_from
            status["checkpoints"] = dict(self.workspace.saved)
        if self.outputs is not None:
            status["outputs"] = self.outputs
        if self.engine.images:
            status["timings"] = {"image": round(self.engine.prepare_seconds, 3)}
            status["images"] = self.engine.report()
        write_status(self.rundir, status, finished, self.notify_address)

    # --- control --------------------------------------------------------------------------------
    def request_stop(self, reason: str, message: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = (reason, message)
        if self.workspace is not None:
            self.workspace.workspace.stop_requested()
        for worker in self.sidecars:  # no more restarts; stopped after the containers
            worker.stopping.set()
        self.stopping.set()
        self.changed.set()

    def _deadline(self) -> float | None:
        seconds = self.plan.get("activeDeadlineSeconds")
        return time.time() + seconds if seconds else None

    def supervise(self, workers: list[ContainerWorker], deadline: float | None) -> None:
        """Wait until the workers are done, enforcing deadline and sizeLimit; write status on changes."""
        limits = self.volumes.has_limits()
        while any(not w.finished for w in workers):
            timeout = CHECK_INTERVAL if limits else None
            if deadline is not None:
                timeout = max(0.0, min(timeout or CHECK_INTERVAL * 60, deadline - time.time()))
            self.changed.wait(timeout)
            self.changed.clear()
            if deadline is not None and time.time() >= deadline and not self.stopping.is_set():
                self.request_stop(*DEADLINE_EXCEEDED)
            if limits and not self.stopping.is_set():
                evicted = self.volumes.over_limit()
                if evicted:
                    self.request_stop("Evicted", evicted)
            if self.stopping.is_set():
                terminate_all(workers, float(self.plan["terminationGracePeriodSeconds"]))
            self.write_status()

    def _until(self, done: Callable[[], bool], deadline: float | None) -> None:
        """Wait for `done` (checked at each change the workers report), a stop, or the deadline."""
        while not done() and not self.stopping.is_set():
            timeout = None if deadline is None else max(0.0, deadline - time.time())
            if not self.changed.wait(timeout) and deadline is not None:
                self.request_stop(*DEADLINE_EXCEEDED)
            self.changed.clear()
            self.write_status()

    def _fail_early(self, reason: str, message: str) -> int:
        """Nothing could start (a volume or an image): the pod fails with the reason, no container ran."""
        self.stop_reason = self.stop_reason or (reason, message)  # told to stop meanwhile: that is the reason
        self.phase = "Failed"
        self.write_status(finished=True)
        return 1

    def run(self) -> int:
        (self.rundir / "logs").mkdir(exist_ok=True)
        deadline = self._deadline()
        try:
            self.volumes.prepare()
            self.engine.make_shm()  # inside memory_root: released with the pod's RAM volumes
        except (OSError, VolumeError) as exc:
            return self._fail_early("FailedMount", str(exc))
        try:
            self._prepare_images(deadline)
        except ImagePullFailed as exc:
            self._set_waiting(exc.container, exc.reason, str(exc))
            self.volumes.release_memory()
            return self._fail_early(exc.reason, f"container {exc.container}: {exc}")
        # No status write here: the first container's start is the first change worth a write (and a wake).
        try:
            if self.argo:
                try:
                    argo_io.prepare(self.argo, self._argo_container(), self.volumes.paths, self.engine.name,
                                    scratch_root({"dirs": {"scratch": self.argo.get("scratch")}}) / "datasets")
                except (OSError, argo_io.ArgoIOError) as exc:
                    return self._fail_early("ArtifactsUnavailable", str(exc))
            self._restore_workspace()
            try:
                self._run_containers(deadline)
                while self._replay_lost():
                    self._run_containers(deadline)
            finally:
                self._retire_sidecars()
            if self.stopping.is_set() and self.phase != "Succeeded":
                self.phase = "Failed"
            if self.argo:
                self._collect_outputs()
        finally:
            if self.workspace is not None:  # first: its background L2 copy reads from the emptyDir
                self.workspace.finish(self.phase == "Succeeded")
            self.volumes.release_memory()
        self.write_status(finished=True)
        return 0 if self.phase == "Succeeded" else 1

    def _prepare_images(self, deadline: float | None) -> None:
        """Every image before any container starts. While the registry cannot be reached the pod stays Pending,
        its container waiting in ImagePullBackOff, until the pull works, the pod is stopped or its deadline."""
        workers = self.inits + self.mains
        states = [w.status["state"] for w in workers]
        timer = None
        if deadline is not None:
            timer = threading.Timer(max(0.0, deadline - time.time()), self.request_stop, DEADLINE_EXCEEDED)
            timer.daemon = True
            timer.start()
        try:
            self.engine.prepare([w.spec for w in workers], self.stopping, self._backing_off)
        finally:
            if timer is not None:
                timer.cancel()
        for worker, state in zip(workers, states, strict=True):
            worker.status["state"] = state  # pulled after all: waiting to start as before

    def _backing_off(self, container: str, message: str) -> None:
        self._set_waiting(container, "ImagePullBackOff", message)
        self.write_status()

    def _set_waiting(self, container: str, reason: str, message: str) -> None:
        for worker in self.inits + self.mains:
            if worker.spec["name"] == container:
                worker.status["state"] = {"waiting": {"reason": reason, "message": message}}

    def _argo_container(self) -> dict[str, Any]:
        assert self.argo is not None
        return next(w.spec for w in self.mains if w.spec["name"] == self.argo["container"])

    def _collect_outputs(self) -> None:
        assert self.argo is not None
        worker = next(w for w in self.mains if w.spec["name"] == self.argo["container"])
        self.outputs = argo_io.collect(self.argo, worker.spec, self.volumes.paths, worker.stdout_copy,
                                       worker.last_exit, worker.stdout_lost)

    def _run_containers(self, deadline: float | None) -> None:
        """Init containers in order (those already done are skipped), then the main containers."""
        for worker in self.inits:
            if worker.succeeded():  # restored from a checkpoint, or done before a replay
                continue
            worker.start()
            if worker.sidecar:  # the next one starts once it runs (no startupProbe: as soon as it started)
                self._until(lambda w=worker: w.ran or w.finished, deadline)  # a quick exit counts too
                if self.stopping.is_set():  # stopped (or out of time) while it was starting: never initialized
                    self.phase = "Failed"
                    return
                continue
            self.supervise([worker], deadline)
            if not worker.succeeded():
                self.phase = "Failed"
                return
            if self.workspace is not None:
                self.workspace.checkpoint([w.spec["name"] for w in self.inits if w.succeeded()])
        self.initialized = True
        self.phase = "Running"
        for worker in self.mains:
            worker.start()
        self.supervise(self.mains, deadline)
        ok = all(w.succeeded() for w in self.mains)
        self.phase = "Succeeded" if ok and not self.stop_reason else "Failed"

    def _replay_lost(self) -> bool:
        """A container gave up its restart because the rewind lost earlier containers' results: those run
        again, then it does (fresh threads, status and back-off carried over)."""
        if self.workspace is None or not self.workspace.lost or self.stopping.is_set():
            return False
        lost, self.workspace.lost = self.workspace.lost, []
        self.inits = [w.again(reran=True) if w.spec["name"] in lost
                      else w.again(reran=False) if w.finished and not w.succeeded() else w for w in self.inits]
        self.mains = [w.again(reran=False) if w.finished else w for w in self.mains]
        self.initialized = all(w.succeeded() for w in self.inits)
        self.phase = "Pending"
        return True

    def _restore_workspace(self) -> None:
        """A pod in pipeline form: its shared emptyDir is the checkpointed workspace (see pod_workspace); the
        init containers its checkpoint covers are marked done."""
        if self.workspace is None:
            return
        done = set(self.workspace.restore())
        fresh = self.volumes.paths[self.workspace.volume]
        if fresh != self.workspace.path:
            shutil.rmtree(fresh, ignore_errors=True)
        self.volumes.paths[self.workspace.volume] = self.workspace.path
        for worker in self.inits:
            if worker.spec["name"] in done:
                worker.mark_restored(self.workspace.restored_from or "")


def _scope(runner: PodRunner | PipelineRunner) -> tuple[str, bool]:
    """What successive attempts share (`runtime.attempt_marks`): a pipeline shard's or an Indexed Job index's
    workspace, else the pod itself; and whether earlier attempts of it can exist. A pod's own scope has none (its
    one run directory runs once: `started`), so there is nothing to sweep for (a scan of every process's
    environment, ~2 ms a pod start)."""
    if isinstance(runner, PipelineRunner):
        return runner.workspace.root.name, True
    if runner.workspace is not None:
        return runner.workspace.workspace.root.name, True
    return f"podline-{runner.pod.get('podUid', runner.pod['uid'])}", False


def run_pod(rundir: Path, plan_path: Path | None = None, index: int | None = None) -> int:
    """Run the attempt in `rundir` exactly once, however often this is called."""
    fd = os.open(rundir / "lock", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    marker = rundir / "started"
    if marker.exists():
        return 0
    started = {"pid": os.getpid(), "at": rfc3339(), "node": socket.gethostname()}
    write_json_atomic(marker, started)
    plan_file = plan_path or rundir / "plan.json"
    plan = json.loads(plan_file.read_text())
    runner: PodRunner | PipelineRunner
    if plan.get("kind") == "Pipeline":
        runner = PipelineRunner(plan, rundir, index, plan_file)
    else:
        runner = PodRunner(plan, rundir, index)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: runner.request_stop("Terminated", "pod was stopped"))
    if isinstance(runner, PipelineRunner):
        forward_signals(lambda: list(runner.running.values()), runner.log)
    else:
        forward_signals(lambda: runner.inits + runner.mains, runner.log)
    # An attempt podline gave up (it started late, or runs on) must not touch the attempt that replaced it.
    scope, shared = _scope(runner)
    mark = attempt_marks.begin(scope, runner.log, sweep=shared and not stop_requested(rundir))
    write_json_atomic(marker, {**started, "run": str(mark)})  # the local backend kills by it (cancel)
    become_subreaper()  # see write_status in podline.runtime.files
    return runner.run()


def run_array_task(base: Path) -> int:
    """A job-array task: index from Slurm, run directory `base/INDEX`, plan template `base/plan.json`."""
    index = int(os.environ["SLURM_ARRAY_TASK_ID"])
    rundir = base / str(index)
    rundir.mkdir(exist_ok=True, mode=0o700)
    try:
        return run_pod(rundir, base / "plan.json", index)
    finally:
        account_as_cancelled(rundir)


def main(argv: list[str]) -> int:
    """The batch script's runner (`exec python -m podline.runtime.pod`): its job is its own."""
    if len(argv) == 3 and argv[1] == "--array-base":
        return run_array_task(Path(argv[2]))
    if len(argv) == 2:
        try:
            return run_pod(Path(argv[1]))
        finally:
            account_as_cancelled(Path(argv[1]))
    print("usage: python -m podline.runtime.pod RUNDIR | --array-base DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
