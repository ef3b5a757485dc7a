"""Every process a pod attempt starts carries the attempt's mark, so that none of them outlives the attempt.

The runner is a child subreaper and kills what its containers left running when the pod ends
(`runtime.processes`). A runner killed alone (SIGKILL, the OOM killer) kills nothing: a container's `setsid cmd`
is in none of the runner's sessions, is reparented to init and goes on writing into the workspace the next
attempt resumes from (a pipeline shard's retry, the next pod of an Indexed Job index); on Slurm with
proctrack/linuxproc it outlives the job too. Kubernetes never lets a container's processes outlive it.

So the runner puts `PODLINE_RUN=<scope>@<node>@<start ns>.<runner pid>` in its own environment and in every
container's. The scope is what successive attempts share (a pipeline shard's or an Indexed Job index's
workspace; else the pod); node, start and pid tell runners apart. A process keeps its environment through
`setsid`, double forks and bwrap (whose processes are host processes: their owner reads their environment in
/proc), so only one that replaces its environment, or runs setuid (unreadable), escapes.

Before a runner starts work it kills every process of its user on its node marked with its scope and an earlier
start (`begin`): one pass over /proc when nothing is left, cheap next to a pod's start. Processes of other pods
and of this or a later attempt are never touched, and the node is part of the mark because the nodes of a test
cluster can share one PID namespace. The local backend, finding a runner gone, kills its attempt's processes
by the same mark (`kill_attempt`), also when no attempt follows.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

ENV = "PODLINE_RUN"
PASSES = 10  # a process killed as it forks leaves a child the pass did not see: look again (a few times at most)
GONE_WAIT = 5.0  # seconds a runner waits for what it killed to be gone before it touches the workspace


@dataclass(frozen=True)
class Mark:
    scope: str
    node: str
    started_ns: int
    runner: int

    def __str__(self) -> str:
        return f"{self.scope}@{self.node}@{self.started_ns}.{self.runner}"

    @classmethod
    def new(cls, scope: str) -> Mark:
        """The mark of an attempt this process (its runner) starts now."""
        return cls(scope, socket.gethostname(), time.time_ns(), os.getpid())


def parse(text: str) -> Mark | None:
    """A mark from its text; None for anything else (a user's own PODLINE_RUN, say)."""
    parts = text.rsplit("@", 2)
    if len(parts) != 3:
        return None
    scope, node, started = parts
    started_ns, _, runner = started.partition(".")
    if not (scope and node and started_ns.isdigit() and runner.isdigit()):
        return None
    return Mark(scope, node, int(started_ns), int(runner))


def earlier(seen: Mark, own: Mark) -> bool:
    """Is `seen` the mark of an earlier attempt of `own`'s work on `own`'s node?"""
    return seen.scope == own.scope and seen.node == own.node and seen.started_ns < own.started_ns


def mark_in(environ: bytes) -> Mark | None:
    """The mark in a process's environment as /proc/PID/environ holds it (NUL-separated), if any."""
    prefix = ENV.encode() + b"="
    if prefix not in environ:
        return None
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return parse(entry[len(prefix):].decode(errors="replace"))
    return None


def inherited(env: Mapping[str, str]) -> dict[str, str]:
    """What a container's environment gets of `env` (the runner's): its mark, if it has one."""
    return {ENV: env[ENV]} if ENV in env else {}


def marked_processes() -> Iterator[tuple[int, Mark]]:
    """(pid, mark) of each marked process of this user but this one; one that ends or cannot be read is skipped."""
    uid, me = os.getuid(), os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                mark = mark_in(handle.read())
        except OSError:
            continue
        if mark is not None:
            yield int(entry.name), mark


def kill_marked(wanted: Callable[[Mark], bool]) -> list[int]:
    """SIGKILL every process whose mark is `wanted`, pass after pass until one finds nothing new; the pids."""
    killed: list[int] = []
    for _ in range(PASSES):
        fresh = [pid for pid, mark in marked_processes() if wanted(mark) and pid not in killed]
        if not fresh:
            break
        for pid in fresh:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed += fresh
    return killed


def _gone(pid: int) -> bool:
    """Exited (a zombie no longer runs, whoever is to reap it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _wait_gone(pids: list[int], wait: float) -> list[int]:
    """Wait up to `wait` seconds for `pids` to be gone; those that are not."""
    deadline = time.monotonic() + wait
    left = [pid for pid in pids if not _gone(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = [pid for pid in left if not _gone(pid)]
    return left


def begin(scope: str, log: Callable[[str], None], sweep: bool = True) -> Mark:
    """Mark this runner (every process it starts from now on inherits the mark) and, with `sweep`, first kill
    what earlier attempts of `scope` left running on this node, waiting for them to be gone."""
    mark = Mark.new(scope)
    if sweep:
        killed = kill_marked(lambda seen: earlier(seen, mark))
        if killed:
            log(f"killed {len(killed)} process(es) an earlier attempt left running: {killed}")
        left = _wait_gone(killed, GONE_WAIT)
        if left:
            log(f"not gone after {GONE_WAIT:g} s (uninterruptible sleep?), going on: {left}")
    os.environ[ENV] = str(mark)
    return mark


def kill_attempt(text: str) -> list[int]:
    """Kill every process of the attempt marked `text` (as its runner recorded it), without waiting."""
    mark = parse(text)
    return [] if mark is None else kill_marked(lambda seen: seen == mark)
