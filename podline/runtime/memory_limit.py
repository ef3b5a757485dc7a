"""`limits.memory` as the kubelet's cgroup enforces it: a container past its limit is killed and ends
`OOMKilled` (exit 137).

Where a cgroup holds the job (Slurm with task/cgroup), the kernel kills first and Slurm says OUT_OF_MEMORY.
Elsewhere — the local backend, a cluster with task/none, the host runtime or bwrap without cgroups — nothing did,
and a container far over its limit succeeded in silence. So the runner samples the resident memory of each
limited container's processes (the container's first process and every descendant, as the cgroup would count
them) every CHECK_SECONDS and kills the container's processes when the sum is over the limit. It is a sampled
limit, not a hard cap: between two samples a container may run past it briefly, and memory in a RAM-backed
emptyDir (tmpfs pages, counted by a cgroup) is not counted here: its `sizeLimit` is enforced apart.
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
    """Resident memory of `root` and every process below it."""
    total = 0
    for pid in [root, *descendants(root)]:
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
    return total


class MemoryWatch(threading.Thread):
    """Kills `process`'s container (through `kill`) once its processes hold more than `limit` bytes."""

    def __init__(self, process: subprocess.Popen[bytes], limit: int, kill: Callable[[], None]) -> None:
        super().__init__(name=f"memory-{process.pid}", daemon=True)
        self.process, self.limit, self.kill = process, limit, kill
        self.exceeded = False
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(CHECK_SECONDS) and self.process.poll() is None:
            if resident_bytes(self.process.pid) > self.limit:
                self.exceeded = True
                self.kill()
                return

    def stop(self) -> bool:
        """Stop watching (the container ended); whether it was killed for its memory."""
        self.done.set()
        self.join()
        return self.exceeded
