"""The embedded local backend: each pod attempt is a pod runner forked from the controller.

The runner is forked into its own session, so it survives the controller (a SIGKILLed controller finds its
pods still running and adopts them through their run directories; orphans are reparented to init). Forking
an already-imported runner instead of starting a new Python keeps pod start overhead to a few
milliseconds; the controller reaps its finished children with `reap()` instead of waiting for them.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from podline.backends.base import Observation
from podline.runtime.attempt_marks import kill_attempt
from podline.runtime.expand import host_ip
from podline.runtime.files import read_json, write_json_atomic
from podline.runtime.pod import run_pod
from podline.runtime.processes import become_runner, libc, session_processes
from podline.runtime.volumes import shm_root

LIVENESS_EVERY = 2.0


def _lock_is_free(rundir: Path) -> bool:
    fd = os.open(rundir / "lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing releases the probe's lock
    return True


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


class LocalBackend:
    name = "local"
    admits_locally = True
    supports_arrays = False

    def __init__(self, home: Path, notify: str = "") -> None:
        self.home = home
        self.notify = notify  # abstract socket name with '@' for the leading NUL
        self._seen: dict[Path, tuple[tuple[int, int], float, Observation]] = {}
        host_ip()  # what every runner looks up once, looked up here once: the forked runners inherit it
        libc()

    def run_dir(self, namespace: str, name: str, uid: str) -> Path:
        return self.home / "pods" / namespace / name / uid

    def launch(self, rundir: Path, plan: dict[str, Any], manifest: dict[str, Any] | None = None,
               adopt: bool = True) -> None:
        rundir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if (rundir / "started").exists():
            return
        write_json_atomic(rundir / "plan.json", {**plan, "notify": self.notify})
        if os.fork() == 0:
            become_runner(run_pod, rundir)

    def end_pass(self) -> None:
        """Nothing to prepare: a local launch is a fork."""

    def release(self, group: str, delete: bool = False) -> None:
        """Nothing is kept: every local pod is a process of its own."""

    def close(self) -> None:
        """Runners are detached and outlive the controller by design."""

    @staticmethod
    def begin_pass() -> None:
        """Collect exited runners forked by this process (their results are in their run directories)."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def observe(self, rundir: Path) -> Observation:
        """Status from the runner's file; liveness from its lock, probed at most every LIVENESS_EVERY s
        while the file does not change (a controller pass stays cheap with thousands of running pods)."""
        try:
            st = os.stat(rundir / "status.json")
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        cached = self._seen.get(rundir)
        now = time.monotonic()
        if cached and stamp and cached[0] == stamp and now - cached[1] < LIVENESS_EVERY:
            return cached[2]
        seen = self._observe(rundir)
        if seen.state == "running" and stamp:
            self._seen[rundir] = (stamp, now, seen)
        else:
            self._seen.pop(rundir, None)
        return seen

    def _observe(self, rundir: Path) -> Observation:
        doc = read_json(rundir / "status.json")
        if doc and doc.get("finished"):
            return Observation("finished", doc["status"], doc.get("node"))
        # Look at `started` before probing the lock: a free lock only means "died" if the runner had
        # already taken it; a runner that takes it right after the probe is starting, not lost.
        had_started = (rundir / "started").exists()
        alive = not _lock_is_free(rundir) if rundir.exists() else False
        if alive:
            return Observation("running", doc["status"] if doc else None, doc.get("node") if doc else None)
        # Re-read: the runner may have finished between the two looks.
        doc = read_json(rundir / "status.json")
        if doc and doc.get("finished"):
            return Observation("finished", doc["status"], doc.get("node"))
        if had_started:
            return Observation("lost", doc["status"] if doc else None, detail=_last_line(rundir / "runner.log"))
        if (rundir / "started").exists():
            return Observation("running", doc["status"] if doc else None)  # it took the lock just now
        return Observation("unstarted")

    def cancel(self, rundir: Path, hard: bool = False) -> None:
        """SIGTERM the runner; `hard`: SIGKILL its session and whatever of its attempt left it (`setsid`; see
        runtime.attempt_marks), as when the runner was killed alone."""
        started = read_json(rundir / "started") or {}
        if "pid" not in started:
            return
        pid = int(started["pid"])
        targets = session_processes(pid) if hard else [pid]
        for target in targets:
            try:
                os.kill(target, signal.SIGKILL if hard else signal.SIGTERM)
            except ProcessLookupError:
                pass
        if hard and started.get("run"):
            kill_attempt(started["run"])

    def claim(self, rundir: Path) -> bool:
        rundir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(rundir / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            if not (rundir / "started").exists():
                write_json_atomic(rundir / "started", {"claimed": True})
            return True
        finally:
            os.close(fd)

    def cleanup(self, rundir: Path, pod_uid: str) -> None:
        self._seen.pop(rundir, None)
        shutil.rmtree(rundir, ignore_errors=True)
        shutil.rmtree(shm_root() / f"podline-{pod_uid}", ignore_errors=True)
        for parent in (rundir.parent, rundir.parent.parent):
            try:
                parent.rmdir()
            except OSError:
                break
