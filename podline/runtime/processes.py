"""A pod's processes: how the local backend and the pilot agent start a runner, and how nothing of a pod is
left running once it is over.

Forking an already-imported runner instead of starting a new Python keeps a pod's start to milliseconds. The
child gets a session of its own, so it outlives its parent if need be, and `session_processes` finds the
runner together with every container it started (a hard stop kills them all). In Kubernetes a container's
processes end with it (they share its PID namespace); bwrap gives that for free, the host runtime does not: a
`cmd &` or a `setsid cmd` would outlive the pod, on Slurm too (proctrack/linuxproc loses reparented
processes). So the runner is a child subreaper — orphans of its containers become its children instead of
init's — and kills whatever of them is left when the pod ends (`kill_descendants`). A runner killed alone kills
nothing: for that, every process of an attempt carries its mark (`runtime.attempt_marks`).
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path


def become_runner(run: Callable[[Path], int], rundir: Path, die_with_parent: bool = False) -> None:
    """In a freshly forked child: detach (own session), drop inherited fds, `run` the pod, exit; never returns.
    `die_with_parent`: SIGTERM when the parent dies (a pilot agent's runners must not outlive its allocation;
    the local backend's must outlive the controller)."""
    code = 2
    parent = os.getppid()
    try:
        os.setsid()
        if die_with_parent:
            _terminate_with_parent(parent)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        try:
            signal.set_wakeup_fd(-1)  # the pilot agent's wake-up pipe is not the runner's
        except ValueError:  # forked from a thread other than the main one: there is none to reset
            pass
        log = os.open(rundir / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, 1 << 16)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        code = run(rundir)
    except BaseException:  # noqa: BLE001 - the child must never return into its parent's code
        traceback.print_exc()
    finally:
        os._exit(code)


PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library, loaded once (a forking parent loads it before: its runners inherit it)."""
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if libc().prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option})")


def become_subreaper() -> None:
    """Orphaned descendants become this process's children (so `kill_descendants` finds them)."""
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    except OSError:  # an old kernel: leftovers of `setsid` escape, as they would without this
        pass


def _proc_stats() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, the fields of /proc/PID/stat after its command name: state ppid pgrp session …) of each process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        yield int(entry), fields


def _parents() -> dict[int, int]:
    """pid → parent pid of every process."""
    return {pid: int(fields[1]) for pid, fields in _proc_stats()}


def children_map() -> dict[int, list[int]]:
    """pid → its children's pids, for every process (one scan of /proc, to walk several trees)."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    return children


def descendants(root: int, children: dict[int, list[int]] | None = None) -> list[int]:
    """Every process below `root` (children, theirs, …), from `children` (default: /proc now)."""
    children = children_map() if children is None else children
    found, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _childless() -> bool:
    """Has this process no child at all, exited or not (none is reaped: WNOWAIT)? A child subreaper without one
    has no descendant either: an orphan below it would have been reparented to it."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return False


def kill_descendants(root: int) -> list[int]:
    """SIGKILL every process below `root` and reap those that are its children; return the pids killed."""
    if root == os.getpid() and _childless():  # the common case, without a scan of /proc
        return []
    killed = descendants(root)
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in killed:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:  # a grandchild: its own parent (killed too) or this subreaper reaps it
            pass
    return killed


def _terminate_with_parent(parent: int) -> None:
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the prctl
        os.kill(os.getpid(), signal.SIGTERM)


def session_processes(sid: int) -> list[int]:
    """PIDs whose session id is `sid` (a runner and every container it started)."""
    return [pid for pid, fields in _proc_stats() if int(fields[3]) == sid]
