"""Signals Slurm sends the batch shell, passed on to the containers that asked for them.

A pod's or pipeline shard's runner is the batch script's process on a Slurm node: `--signal=B:USR1@120` (or
`scancel --batch --signal=USR1`) reaches it, not the containers, which want it (a checkpoint before the time
limit, say).
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable

from podline.api.slurmflags import FORWARDED_SIGNALS
from podline.runtime.container import ContainerWorker


def forward_signals(workers: Callable[[], list[ContainerWorker]], log: Callable[[str], None]) -> None:
    """Slurm's `--signal=B:USR1@120` (or `scancel --batch --signal=USR1`) reaches the batch shell, which is this
    runner: it must not die of it (default action) but pass it on to the containers' processes, which asked for it
    (a checkpoint before the time limit, say). The handler only queues the signal: signalling a container takes
    its worker's lock, which the interrupted main thread may hold; a forwarding thread does it."""
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()  # put() is safe in a signal handler

    def forward() -> None:
        while True:
            signum = pending.get()
            alive = [w for w in workers() if w.process is not None and not w.finished]
            for worker in alive:
                worker.signal(signum)
            log(f"forwarded {signal.Signals(signum).name} to {len(alive)} running container(s)")

    threading.Thread(target=forward, name="signal-forwarder", daemon=True).start()
    for name in FORWARDED_SIGNALS:
        signal.signal(getattr(signal, f"SIG{name}"), lambda signum, _: pending.put(signum))
