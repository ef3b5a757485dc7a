"""`limits.memory` as the kubelet's cgroup enforces it: a container past its limit is killed and ends
`OOMKilled` (exit 137).

Where nothing else does it — the local backend, a Slurm cluster with task/none, the host runtime or bwrap
without cgroups — a container far over its limit used to succeed in silence. So the runner samples the memory of
each limited container's processes (its first process and every descendant) every CHECK_SECONDS and kills them
when the sum is over the limit. Each process counts the anonymous part of its proportional set size (PSS: a page
shared by N processes counts 1/N to each), so forked workers sharing a dataset count it once, as a cgroup does,
and file pages (reclaimable) and tmpfs pages (a workspace file a step maps) do not; without /proc/PID/smaps_rollup
(kernels before 4.14) the resident size. A process that left the container's tree (a double fork on the host
runtime, re-parented to the runner) is not counted; under bwrap it stays in the container's PID namespace.
Where a cgroup does hold the job (Slurm's task/cgroup) the sampling runs too, and the kernel usually kills first
(Slurm then says OUT_OF_MEMORY). It is a sampled limit, not a hard cap: between two samples a container may run
past it briefly; and memory in a RAM-backed emptyDir (tmpfs pages, which a cgroup counts) is not counted here:
its `sizeLimit` is enforced apart.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from podline.api.quantity import memory_bytes
from podline.runtime.processes import children_map, descendants

CHECK_SECONDS = float(os.environ.get("PODLINE_MEMORY_CHECK_SECONDS", "0.25"))
PAGE = os.sysconf("SC_PAGE_SIZE")


def memory_limit(spec: dict[str, Any]) -> int | None:
    """The planned container's `resources.limits.memory` (plan `memoryLimit`) in bytes (None: no limit)."""
    limit = spec.get("memoryLimit")
    return memory_bytes(limit) or None if limit else None


def resident_bytes(root: int, children: dict[int, list[int]] | None = None) -> int:
    """Memory held by `root` and every process below it (PSS, else RSS: see the module docstring)."""
    return sum(_process_bytes(pid) for pid in [root, *descendants(root, children)])


def _process_bytes(pid: int) -> int:
    try:
        fields: dict[bytes, int] = {}
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                key = line.split(b":", 1)[0]
                if key in (b"Pss", b"Pss_Anon", b"Pss_Shmem", b"SwapPss"):
                    fields[key] = int(line.split()[1]) * 1024
        if b"Pss_Anon" in fields:  # what a cgroup cannot reclaim: not file pages, not tmpfs (a mapped workspace)
            return fields[b"Pss_Anon"] + fields.get(b"SwapPss", 0)
        if b"Pss" in fields:
            return fields[b"Pss"] - fields.get(b"Pss_Shmem", 0)
    except (OSError, ValueError, IndexError):  # gone meanwhile, or an old kernel: the resident size
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):  # gone meanwhile
        return 0


class MemoryWatch:
    """Kills `process`'s container (through `kill`) once its processes hold more than `limit` bytes."""

    def __init__(self, process: subprocess.Popen[bytes], limit: int, kill: Callable[[], None]) -> None:
        self.process, self.limit, self.kill = process, limit, kill
        self.exceeded = False

    def start(self) -> None:
        SAMPLER.add(self)

    def stop(self) -> bool:
        """Stop watching (the container ended); whether it was killed for its memory (the caller checks it
        ended by that SIGKILL: one that exited on its own in the same instant was not)."""
        SAMPLER.remove(self)
        return self.exceeded

    def check(self, children: dict[int, list[int]]) -> bool:
        """One sample; True when the watch is over (its process ended, or was killed for its memory)."""
        if self.process.poll() is not None:
            return True
        if resident_bytes(self.process.pid, children) <= self.limit or self.process.poll() is not None:
            return False
        try:
            self.kill()
        except ProcessLookupError:  # it ended on its own just now
            return True
        self.exceeded = True
        return True


class _Sampler:
    """One thread for every watch of the runner: one scan of /proc per sample, however many containers are
    limited (a scan each cost ~1.5 ms of CPU per container, four times a second)."""

    def __init__(self) -> None:
        self.watches: set[MemoryWatch] = set()
        self.lock = threading.Lock()  # held while sampling: a watch removed is not checked after `remove`
        self.thread: threading.Thread | None = None

    def add(self, watch: MemoryWatch) -> None:
        with self.lock:
            self.watches.add(watch)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="memory-limits", daemon=True)
                self.thread.start()

    def remove(self, watch: MemoryWatch) -> None:
        with self.lock:
            self.watches.discard(watch)

    def _run(self) -> None:
        while True:
            time.sleep(CHECK_SECONDS)
            with self.lock:
                if not self.watches:
                    self.thread = None  # the next add starts another
                    return
                children = children_map()
                self.watches -= {watch for watch in list(self.watches) if watch.check(children)}


SAMPLER = _Sampler()


def _forget_in_child() -> None:
    """A forked runner has none of its parent's threads or containers: a sampler of its own, when it needs one."""
    global SAMPLER
    SAMPLER = _Sampler()


os.register_at_fork(after_in_child=_forget_in_child)
