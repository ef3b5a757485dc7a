"""Pod runners as forked children: how the local backend and the pilot agent start one, and find its processes.

Forking an already-imported runner instead of starting a new Python keeps a pod's start to milliseconds. The
child gets a session of its own, so it outlives its parent if need be, and `session_processes` finds the
runner together with every container it started (a hard stop kills them all).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import traceback
from pathlib import Path

from podline.runtime.pod import run_pod


def become_runner(rundir: Path, die_with_parent: bool = False) -> None:
    """In a freshly forked child: detach (own session), drop inherited fds, run the pod, exit; never returns.
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
        code = run_pod(rundir)
    except BaseException:  # noqa: BLE001 - the child must never return into its parent's code
        traceback.print_exc()
    finally:
        os._exit(code)


PR_SET_PDEATHSIG = 1


def _terminate_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:  # it died before the prctl
        os.kill(os.getpid(), signal.SIGTERM)


def session_processes(sid: int) -> list[int]:
    """PIDs whose session id is `sid` (a runner and every container it started)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields after "comm)": state ppid pgrp session ...
            pids.append(int(entry))
    return pids
