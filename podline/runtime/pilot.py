"""The pilot agent: runs inside a pilot allocation and executes the step pods the controller queues for it.

The pilot directory (on the shared directory; the controller's side is podline.backends.pilot):
  pilot.json     {"size": "cpu=…m,memory=…,nvidia.com/gpu=…,idle=…s", "metadata": …}: what the allocation holds
  pilot-job      {"generation", "job"}: the controller's record of the current allocation
  queue/ENTRY    a pod waiting: {"rundir", "needs": {"cpu": millicores, "memory": bytes, "gpu": n}}; entries
                 are named so that they sort in the order they were queued
  running/ENTRY  a pod an agent took: the rename from queue/ is atomic, so one agent takes it, and a take and
                 the controller's claim (the unlink of queue/ENTRY) exclude each other
  cancel/ENTRY   "term" or "kill": stop a pod (SIGTERM to its runner, which gives its containers their grace
                 period; or SIGKILL to every process of the pod)
  stop           the workflow is over: leave as soon as nothing runs
  yield          a step too large for the pilot runs as a job of its own: leave as soon as nothing runs, so as
                 not to hold cores that job may wait for
  exiting        written by an agent about to leave; a controller queueing a pod then submits a new one

Each pod runs in a forked child (no interpreter start, so a hand-off between steps costs milliseconds) with the
pod runner, the same code as under a job of its own: statuses, logs, restarts and deadlines behave the same.
The agent writes its job id into the pod's run directory when it takes it; that is how the controller finds
the allocation a pod runs in. A pod starts only if the allocation has the time left that the pod's own job
would have had (`needs.seconds`: its deadline or the context's time limit), so a pilot never shortens a step;
when nothing queued can start any more, the agent leaves and the controller submits a fresh allocation. Its
runners die with it (a parent-death signal), so a lost agent leaves no step running outside its allocation.
Pods that end wake the agent at once (SIGCHLD through a wake-up pipe); the queue is polled, since a shared
filesystem sends no events across nodes: every 10 ms just after something happened, backing off to 0.5 s once
nothing has for a while. SIGTERM (scancel, the time limit) is passed on to every
runner, and the agent leaves once they have ended.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from podline.api.config import slurm_seconds
from podline.api.pilot import PilotSize, parse_pilot
from podline.runtime.attempt_marks import kill_attempt
from podline.runtime.files import read_json, rfc3339, stop_requested, write_json_atomic
from podline.runtime.pod import run_pod
from podline.runtime.processes import become_runner, session_processes

FAST, SLOW, FAST_FOR = 0.01, 0.5, 1.0
FRESH_SLACK = 60  # seconds a fresh allocation may already have used: the step's own job would have lost as many
LOOK_AGAIN = 60.0  # seconds between asking Slurm how long the allocation has left (an admin may extend it)


@dataclass
class Child:
    entry: str
    rundir: Path
    needs: dict[str, int]
    signalled: str = ""


class Agent:
    def __init__(self, pilotdir: Path) -> None:
        self.dir = pilotdir
        described = read_json(pilotdir / "pilot.json") or {}
        self.size = parse_pilot(described.get("size", "")) or PilotSize(cpu=1000)
        self.job_id = os.environ.get("SLURM_JOB_ID", "")
        self.children: dict[int, Child] = {}
        self.stopping = False
        self.active_at = time.monotonic()  # a pod started or ended: polls are fast for a while; idle since
        self.ends_at: float | None = None  # monotonic time the allocation ends; None: unknown or unlimited
        self.asked_at = -LOOK_AGAIN
        self.started = 0  # pods started in this allocation
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda *_: self.stop())

    # --- the loop ----------------------------------------------------------------------------------
    def run(self) -> int:
        log(f"pilot agent up: job {self.job_id or '-'}, {self.size.render()}")
        while True:
            self.reap()
            self.handle_cancels()
            if self.stopping:
                if not self.children:
                    log("stopped")
                    return 0
            else:
                self.take()
                if not self.children and self.leave():
                    return 0
            self.sleep()

    def sleep(self) -> None:
        quiet = time.monotonic() - self.active_at
        timeout = FAST if quiet < FAST_FOR else min(SLOW, quiet / 10)
        readable, _, _ = select.select([self.wake_r], [], [], timeout)
        if readable:
            try:
                while os.read(self.wake_r, 512):
                    pass
            except BlockingIOError:
                pass

    def stop(self) -> None:
        """SIGTERM to the agent: every runner gets it (they stop their containers with their grace periods)."""
        self.stopping = True
        for pid, child in self.children.items():
            self._signal(pid, child, "term")

    # --- pods ------------------------------------------------------------------------------------
    def free(self) -> dict[str, int]:
        used = {k: sum(c.needs.get(k, 0) for c in self.children.values()) for k in ("cpu", "memory", "gpu")}
        return {"cpu": self.size.cpu - used["cpu"], "memory": self.size.memory - used["memory"],
                "gpu": self.size.gpu - used["gpu"]}

    def _fits(self, needs: dict[str, int]) -> bool:
        free = self.free()
        return (needs.get("cpu", 0) <= free["cpu"] and needs.get("gpu", 0) <= free["gpu"]
                and (not self.size.memory or needs.get("memory", 0) <= free["memory"]) and self._in_time(needs))

    def _in_time(self, needs: dict[str, int]) -> bool:
        """Whether the allocation has the time left the pod's own job would have had. Until it has started a pod,
        an allocation counts as fresh: the seconds it spent starting its agent a job of the pod's own would have
        spent too (without this grace a step as long as the pilot's walltime would never start in any)."""
        if not needs.get("seconds") or not self.job_id:
            return True
        now = time.monotonic()
        if now - self.asked_at >= LOOK_AGAIN:
            self.asked_at = now
            left = time_left(self.job_id)
            self.ends_at = None if left is None else now + left
        grace = 0 if self.started else FRESH_SLACK
        return self.ends_at is None or needs["seconds"] <= self.ends_at - now + grace

    def startable(self) -> list[str]:
        """Queued pods that could start in an empty allocation now (they fit it, and in its time left)."""
        out = []
        for entry in self.queued():
            wanted = read_json(self.dir / "queue" / entry)
            if isinstance(wanted, dict) and self._in_time(wanted.get("needs", {})):
                out.append(entry)
        return out

    def queued(self) -> list[str]:
        try:
            return sorted(name for name in os.listdir(self.dir / "queue") if not name.startswith("."))
        except FileNotFoundError:
            return []

    def take(self) -> None:
        """Start every queued pod that fits what is free, in queue order (a smaller one may pass a larger)."""
        for entry in self.queued():
            try:
                wanted = json.loads((self.dir / "queue" / entry).read_text())
            except (OSError, ValueError):
                continue  # taken or claimed meanwhile, or still being written (it is written aside, then renamed)
            if not self._fits(wanted.get("needs", {})):
                continue
            try:
                os.rename(self.dir / "queue" / entry, self.dir / "running" / entry)
            except FileNotFoundError:
                continue  # another agent took it, or the controller claimed it
            self.start(entry, Path(wanted["rundir"]), wanted.get("needs", {}))

    def start(self, entry: str, rundir: Path, needs: dict[str, int]) -> None:
        self.active_at = time.monotonic()
        if stop_requested(rundir):  # cancelled while it waited: it never starts
            if not (rundir / "started").exists():
                write_json_atomic(rundir / "started", {"claimed": True})
            _unlink(self.dir / "running" / entry)
            return
        try:
            if self.job_id:
                (rundir / "slurm-job-id").write_text(self.job_id + "\n")
        except OSError as exc:  # its run directory is gone or unwritable: the controller queues it again
            log(f"cannot start {rundir.name}: {exc}")
            _unlink(self.dir / "running" / entry)
            return
        pid = os.fork()
        if pid == 0:
            become_runner(run_pod, rundir, die_with_parent=True)
        self.children[pid] = Child(entry, rundir, needs)
        self.started += 1
        log(f"started {rundir.name} as pid {pid}")
        if self.stopping:  # a SIGTERM between the fork and the line above passed this child by
            self._signal(pid, self.children[pid], "term")

    def reap(self) -> None:
        while self.children:
            try:
                pid, code = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            self.active_at = time.monotonic()
            _unlink(self.dir / "running" / child.entry)
            _unlink(self.dir / "cancel" / child.entry)
            log(f"{child.rundir.name} ended ({os.waitstatus_to_exitcode(code)})")
            if os.WIFSIGNALED(code):  # killed (a hard cancel, the OOM killer): what it left running goes too
                _kill_leftovers(child.rundir)

    def handle_cancels(self) -> None:
        try:
            asked = os.listdir(self.dir / "cancel")
        except FileNotFoundError:
            return
        mine = {child.entry: (pid, child) for pid, child in self.children.items()}
        for entry in asked:
            if entry in mine:
                how = (read_json(self.dir / "cancel" / entry) or "term")
                self._signal(*mine[entry], "kill" if how == "kill" else "term")

    @staticmethod
    def _signal(pid: int, child: Child, how: str) -> None:
        if child.signalled == how or child.signalled == "kill":
            return
        child.signalled = how
        targets = session_processes(pid) if how == "kill" else [pid]
        for target in targets:
            try:
                os.kill(target, signal.SIGKILL if how == "kill" else signal.SIGTERM)
            except ProcessLookupError:
                pass

    def leave(self) -> bool:
        """Nothing runs: leave when told to (`stop`, `yield`), when idle too long, or when nothing queued can
        start in the time left, unless a pod that can start was queued meanwhile. The `exiting` mark is written
        before the last look, so a controller queueing a pod either is seen here or sees the mark and submits
        a new allocation."""
        if self.queued() and self.startable():
            return False
        idle = time.monotonic() - self.active_at
        told = next((m for m in ("stop", "yield") if (self.dir / m).exists()), None)
        if told is None and not self.queued() and idle < self.size.idle:
            return False
        (self.dir / "exiting").write_text(self.job_id + "\n")
        if self.startable():
            _unlink(self.dir / "exiting")
            return False
        why = {"stop": "the workflow is over", "yield": "a step runs in a job of its own"}.get(told or "")
        log("leaving: " + (why or (f"idle for {idle:.0f} s" if not self.queued() else "too little time left")))
        return True


def time_left(job_id: str) -> float | None:
    """Seconds the allocation has left (squeue %L), or None if Slurm does not say (unlimited, no answer)."""
    try:
        proc = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return slurm_seconds(proc.stdout.strip()) if proc.returncode == 0 else None


def _kill_leftovers(rundir: Path) -> None:
    """Kill the processes of a runner that died without ending them (a `setsid` child escapes its session; see
    runtime.attempt_marks), by the mark its `started` file records."""
    started = read_json(rundir / "started")
    if isinstance(started, dict) and started.get("run"):
        killed = kill_attempt(started["run"])
        if killed:
            log(f"{rundir.name}: killed {len(killed)} process(es) its runner left: {killed}")


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def log(message: str) -> None:
    print(f"{rfc3339()} pilot: {message}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m podline.runtime.pilot PILOTDIR", file=sys.stderr)
        return 2
    return Agent(Path(argv[1])).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
