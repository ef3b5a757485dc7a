"""One container's life inside a pod: start, wait, record, restart per the pod's restartPolicy.

Each worker runs in its own thread and reports every state change through `on_change`; the pod runner
owns the status document and the decision to stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from podline.api.sidecars import is_sidecar
from podline.runtime.engine import Engine
from podline.runtime.files import log_file, mark_attempt, rfc3339
from podline.runtime.launch import StartError
from podline.runtime.memory_limit import MemoryWatch, memory_limit
from podline.runtime.processes import descendants

BACKOFF_BASE = float(os.environ.get("PODLINE_RESTART_BACKOFF_SECONDS", "1"))
BACKOFF_CAP = 60.0
BACKOFF_RESET_AFTER = 600.0
TEE_DRAIN_SECONDS = 5.0
# A container killed by SIGTERM or SIGKILL the runner did not send: when Slurm ends a job (scancel, time limit,
# pre-emption) it signals every process of it at once, the runner too. A moment's wait lets the runner's own stop
# arrive first, so the pod is stopped (and says why) rather than restarted or failed by the container's exit code.
KILLED = (137, 143)
OUTSIDE_KILL_GRACE = 0.3


def exit_code(returncode: int) -> int:
    """Popen's -N for 'killed by signal N' becomes 128+N, as container runtimes report it."""
    return 128 - returncode if returncode < 0 else returncode


class ContainerWorker(threading.Thread):
    def __init__(self, spec: dict[str, Any], engine: Engine, policy: str, is_init: bool, rundir: Path,
                 stopping: threading.Event, on_change: Callable[[], None]) -> None:
        super().__init__(name=f"container-{spec['name']}", daemon=True)
        self.spec, self.engine, self.policy, self.is_init = spec, engine, policy, is_init
        self.pod, self.rundir = engine.pod, rundir
        self.stopping, self.on_change = stopping, on_change
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = threading.RLock()  # `_run_once` may end the run (`_terminated`) while holding it
        self.finished = False
        self.ran = False  # its process was started at least once (a sidecar's successors may then start)
        self.last_exit: int | None = None
        self.backoff = BACKOFF_BASE
        # e.g. rewind a checkpointed workspace; False: the container cannot restart on its own (the pod runner
        # must first run again what the rewind lost)
        self.before_restart: Callable[[], bool] | None = None
        self.stdout_copy: Path | None = None  # also keep stdout apart here (an Argo step's `result`)
        self.stdout_lost: str | None = None  # why that copy is incomplete
        self.status: dict[str, Any] = {
            "name": spec["name"], "image": spec["image"], "imageID": "", "ready": False, "started": False,
            "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing" if not is_init
                                                     else "ContainerCreating"}},
            "containerID": f"podline://{self.pod.get('podUid', self.pod['uid'])}/{spec['name']}",
        }

    # --- decisions -----------------------------------------------------------------------------
    @property
    def sidecar(self) -> bool:
        """An init container with restartPolicy Always: it runs beside the rest, restarted whenever it ends,
        until the pod runner retires it (its own `stopping`)."""
        return self.is_init and is_sidecar(self.spec)

    def should_restart(self, code: int) -> bool:
        if self.stopping.is_set() or self.policy == "Never" and not self.sidecar:
            return False
        if self.sidecar:
            return True
        if self.is_init or self.policy == "OnFailure":
            return code != 0
        return True  # Always

    def succeeded(self) -> bool:
        return self.finished and self.last_exit == 0

    # --- life ----------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._live()
        finally:  # whatever happened, the pod runner must learn that this container is over
            self.finished = True
            self.on_change()

    def _live(self) -> None:
        log_path = log_file(self.rundir, self.spec["name"])
        while not self.stopping.is_set():
            started = time.time()
            code, reason, message = self._run_once(log_path)
            self.last_exit = code
            if not self.should_restart(code):
                break
            if time.time() - started > BACKOFF_RESET_AFTER:
                self.backoff = BACKOFF_BASE
            with self.lock:
                undo = self.status.get("lastState"), self.status["state"]
                self.status["lastState"] = self.status["state"]
                self.status["restartCount"] += 1
                self.status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message":
                                                    f"back-off {self.backoff:g}s restarting failed container"}}
            self.on_change()
            if self.stopping.wait(self.backoff):
                self._not_restarted(*undo)
                break
            self.backoff = min(BACKOFF_CAP, self.backoff * 2)
            if self.before_restart is not None and not self.before_restart():
                break

    def _not_restarted(self, last_state: dict[str, Any] | None, state: dict[str, Any]) -> None:
        """Stopped in its back-off (a sidecar retired as the pod ends, say): the restart it waited for never
        happened, so it ends as it last ended, its restarts those that ran."""
        with self.lock:
            self.status["state"] = state
            self.status["restartCount"] -= 1
            if last_state is None:
                self.status.pop("lastState", None)
            else:
                self.status["lastState"] = last_state

    def _run_once(self, log_path: Path) -> tuple[int, str, str]:
        begin = rfc3339()
        tee: threading.Thread | None = None
        earlier = log_path.exists()  # a run before this one (a restart, a pipeline step's retry) made it
        with open(log_path, "ab") as log:
            try:
                with self.lock:
                    if self.stopping.is_set():
                        return self._terminated(137, "Error", "pod stopped before start", begin)
                    self.stdout_lost = None
                    run_start = log.tell()
                    mark_attempt(log_path, run_start, earlier)
                    self.process = self.engine.spawn(self.spec, log, subprocess.PIPE if self.stdout_copy else None)
                    tee = self._tee(self.process, log) if self.stdout_copy else None
                    self.status["imageID"] = self.engine.image_id(self.spec)
                    self.status["state"] = {"running": {"startedAt": begin}}
                    self.status["started"] = True
                    self.ran = True
                    self.status["ready"] = not self.is_init or self.sidecar
            except StartError as exc:
                log.write(f"podline: cannot start container: {exc}\n".encode())
                return self._terminated(128, "StartError", str(exc), begin)
            except Exception as exc:  # a bug must fail the container, not kill this thread and hang the pod
                log.write(f"podline: cannot start container: {exc!r}\n".encode())
                return self._terminated(128, "StartError", f"internal error: {exc!r}", begin)
            self.on_change()
            watch = self._watch_memory(self.process)
            code = exit_code(self.process.wait())
            oom = watch is not None and watch.stop() and code == 137
            if code in KILLED and not self.stopping.is_set() and not oom:
                self.stopping.wait(OUTSIDE_KILL_GRACE)
            _end_group(self.process.pid)
            if tee is not None:
                tee.join(TEE_DRAIN_SECONDS)  # a child that keeps stdout open must not hold the pod
        if oom:
            limit = self.spec["memoryLimit"]
            return self._terminated(137, "OOMKilled", f"its processes held more than its memory limit {limit}", begin)
        reason = "Completed" if code == 0 else "Error"
        message = log_tail(log_path, run_start) if code != 0 and self.spec.get("logsAsMessage") else ""
        return self._terminated(code, reason, message, begin)

    def _watch_memory(self, process: subprocess.Popen[bytes]) -> MemoryWatch | None:
        """limits.memory, enforced by sampling where no cgroup does it (runtime.memory_limit)."""
        limit = memory_limit(self.spec)
        if limit is None:
            return None

        def kill() -> None:  # its processes, also those that left its group (reaped by the runner, not here)
            below = descendants(process.pid)
            self.engine.signal(process, signal.SIGKILL)
            for pid in below:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

        watch = MemoryWatch(process, limit, kill)
        watch.start()
        return watch

    def _tee(self, process: subprocess.Popen[bytes], log: IO[bytes]) -> threading.Thread:
        """Copy the container's stdout to its log and, apart, to `stdout_copy` as it comes."""
        assert process.stdout is not None and self.stdout_copy is not None
        pipe, copy_path = process.stdout, self.stdout_copy

        def pump() -> None:
            try:
                with pipe, open(copy_path, "wb") as copy:
                    while chunk := pipe.read1(65536):
                        log.write(chunk)
                        log.flush()
                        copy.write(chunk)
                        copy.flush()
            except ValueError:  # the log was closed: a child outlived the container holding stdout
                pass
            except OSError as exc:  # a full disk, say: the copy is incomplete, and collecting it must say so
                self.stdout_lost = f"stdout could not be kept: {exc.strerror or exc}"

        thread = threading.Thread(target=pump, name=f"stdout-{self.spec['name']}", daemon=True)
        thread.start()
        return thread

    def _terminated(self, code: int, reason: str, message: str, begin: str) -> tuple[int, str, str]:
        term = {"exitCode": code, "reason": reason, "startedAt": begin, "finishedAt": rfc3339()}
        if message:
            term["message"] = message
        with self.lock:
            self.process = None
            self.status["state"] = {"terminated": term}
            self.status["ready"] = False
            self.status["started"] = False
        self.on_change()
        return code, reason, message

    def again(self, reran: bool) -> ContainerWorker:
        """A fresh thread for this container with its status so far; `reran`: it had finished, and its run
        counts as a restart."""
        worker = ContainerWorker(self.spec, self.engine, self.policy, self.is_init, self.rundir, self.stopping,
                                 self.on_change)
        worker.before_restart = self.before_restart
        worker.status, worker.backoff = self.snapshot(), self.backoff
        if reran:
            worker.status["lastState"] = worker.status["state"]
            worker.status["restartCount"] += 1
            worker.status["state"] = {"waiting": {"reason": "PodInitializing"}}
        return worker

    def mark_restored(self, level: str) -> None:
        """Completed by an earlier attempt whose checkpoint was restored: reported, not run again."""
        now = rfc3339()
        self.status["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now,
                                               "finishedAt": now, "message": f"restored from {level} checkpoint"}}
        self.finished, self.last_exit = True, 0

    def signal(self, signum: int) -> None:
        """Signal the container's whole process group (its children too)."""
        with self.lock:
            proc = self.process
            if proc is not None and proc.poll() is None:
                try:
                    self.engine.signal(proc, signum)
                except ProcessLookupError:
                    pass

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {**self.status, "state": dict(self.status["state"])}


def _end_group(pgid: int) -> None:
    """The container's main process has ended: so do the processes it started in its group (`cmd &`), as a
    container's processes end with its PID 1 in Kubernetes (under bwrap, its PID namespace already saw to it)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def log_tail(log_path: Path, start: int, lines: int = 80, limit: int = 2048) -> str:
    """terminationMessagePolicy FallbackToLogsOnError, as the kubelet has it: the end of the failed run's log,
    at most `lines` lines and `limit` bytes."""
    try:
        with open(log_path, "rb") as log:
            end = log.seek(0, os.SEEK_END)
            log.seek(max(start, end - limit))
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def terminate_all(workers: list[ContainerWorker], grace: float) -> None:
    """SIGTERM, wait up to the grace period, then SIGKILL whatever is left."""
    for worker in workers:
        worker.signal(signal.SIGTERM)
    deadline = time.time() + grace
    for worker in workers:
        worker.join(max(0.0, deadline - time.time()))
    for worker in workers:
        if worker.is_alive():
            worker.signal(signal.SIGKILL)
            worker.join()
