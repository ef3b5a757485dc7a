"""`limits.memory` as the kubelet's cgroup enforces it: a container past its limit is killed and ends
`OOMKilled` (exit 137).

Where nothing else does it — the local backend, a Slurm cluster with task/none, the host runtime or bwrap
without cgroups — a container far over its limit used to succeed in silence. So the runner samples the memory of
each limited container's processes (its first process and every descendant) every CHECK_SECONDS and kills them
when the sum is over the limit. Each process counts its proportional set size (PSS: a page shared by N
processes counts 1/N to each), so forked workers sharing a dataset count it once, as a cgroup does; without
/proc/PID/smaps_rollup (kernels before 4.14) the resident size. Where a cgroup does hold the job (Slurm's
task/cgroup) the sampling runs too, and the kernel usually kills first (Slurm then says OUT_OF_MEMORY). It is a
sampled limit, not a hard cap: between two samples a container may run past it briefly; and memory in a
RAM-backed emptyDir (tmpfs pages, which a cgroup counts) is not counted here: its `sizeLimit` is enforced apart.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from podline.api.quantity import memory_bytes
from podline.runtime.processes import descendants

CHECK_SECONDS = float(os.environ.get("PODLINE_MEMORY_CHECK_SECONDS", "0.25"))
PAGE = os.sysconf("SC_PAGE_SIZE")


def memory_limit(spec: dict[str, Any]) -> int | None:
    """The planned container's `resources.limits.memory` (plan `memoryLimit`) in bytes (None: no limit)."""
    limit = spec.get("memoryLimit")
    return memory_bytes(limit) or None if limit else None


def resident_bytes(root: int) -> int:
    """Memory held by `root` and every process below it (PSS, else RSS: see the module docstring)."""
    return sum(_process_bytes(pid) for pid in [root, *descendants(root)])


def _process_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):  # gone meanwhile, or an old kernel: the resident size
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):  # gone meanwhile
        return 0


class MemoryWatch(threading.Thread):
    """Kills `process`'s container (through `kill`) once its processes hold more than `limit` bytes."""

    def __init__(self, process: subprocess.Popen[bytes], limit: int, kill: Callable[[], None]) -> None:
        super().__init__(name=f"memory-{process.pid}", daemon=True)
        self.process, self.limit, self.kill = process, limit, kill
        self.exceeded = False
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(CHECK_SECONDS) and self.process.poll() is None:
            if resident_bytes(self.process.pid) > self.limit and self.process.poll() is None:
                try:
                    self.kill()
                except ProcessLookupError:  # it ended on its own just now
                    return
                self.exceeded = True
                return

    def stop(self) -> bool:
        """Stop watching (the container ended); whether it was killed for its memory (the caller checks it
        ended by that SIGKILL: one that exited on its own in the same instant was not)."""
        self.done.set()
        self.join()
        return self.exceeded
