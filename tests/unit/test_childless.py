"""A runner (a child subreaper) with no child at all has no descendant: `kill_descendants` then skips its scan
of /proc (P5: that scan grew with the number of live runners)."""

from __future__ import annotations

import os
import subprocess

from podline.runtime import processes


def test_childless_is_true_only_without_any_child_and_reaps_nothing() -> None:
    pid = os.fork()
    if pid == 0:  # a fresh process: no children of its own
        code = 0
        try:
            code |= 0 if processes._childless() else 1
            child = subprocess.Popen(["sleep", "0.2"])
            code |= 2 if processes._childless() else 0
            child.wait()  # reaped: none again (and the WNOWAIT check above reaped nothing: wait() got it)
            code |= 0 if processes._childless() else 4
            code |= 0 if processes.kill_descendants(os.getpid()) == [] else 8
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
