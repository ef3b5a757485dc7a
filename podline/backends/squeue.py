"""One watcher per Slurm backend: a single `squeue` call per controller pass answers for every job.

Per-pod `squeue -j` calls are what make peers slow and hammer slurmctld; here one snapshot (all of this
user's jobs, finished ones included while Slurm keeps them, `MinJobAge`) is taken at most every
`MIN_INTERVAL` seconds and indexed by podline's tag in the job comment (`podline:<uid>`), and by array task.
"""

from __future__ import annotations

import getpass
import re
import subprocess
import time
from dataclasses import dataclass

from podline.plan.ranges import expand

QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "CONFIGURING", "POWER_UP_NODE"}
ACTIVE = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING", "SUSPENDED", "STOPPED"}
LOST_REASON = {"TIMEOUT": "DeadlineExceeded", "DEADLINE": "DeadlineExceeded", "OUT_OF_MEMORY": "OOMKilled",
               "NODE_FAIL": "NodeLost", "BOOT_FAIL": "NodeLost", "CANCELLED": "Cancelled", "PREEMPTED": "Preempted"}
MIN_INTERVAL = 1.0
FORMAT = "%i|%T|%r|%N|%k"
_ARRAY = re.compile(r"^(\d+)_(\d+)$")
_PENDING_ARRAY = re.compile(r"^(\d+)_\[(.+)\]$")


@dataclass
class SlurmJob:
    job_id: str  # "123", or "123_4" for an array task
    state: str
    reason: str
    node: str
    comment: str


def parse_squeue(text: str) -> dict[tuple[str, int | None], SlurmJob]:
    """Index squeue lines by (comment, array index or None); pending array ranges are expanded."""
    jobs: dict[tuple[str, int | None], SlurmJob] = {}
    for line in text.splitlines():
        fields = line.split("|", 4)
        if len(fields) != 5:
            continue
        job_id, state, reason, node, comment = fields
        if single := _ARRAY.match(job_id):
            jobs[(comment, int(single[2]))] = SlurmJob(job_id, state, reason, node, comment)
        elif pending := _PENDING_ARRAY.match(job_id):
            for index in expand(pending[2]):
                jobs[(comment, index)] = SlurmJob(f"{pending[1]}_{index}", state, reason, node, comment)
        else:
            jobs[(comment, None)] = SlurmJob(job_id, state, reason, node, comment)
    return jobs


class SqueueWatcher:
    def __init__(self) -> None:
        self.jobs: dict[tuple[str, int | None], SlurmJob] = {}
        self.by_id: dict[str, SlurmJob] = {}
        self.taken_at = 0.0
        self.error = ""
        self._submitted: dict[str, float] = {}

    def _refresh(self) -> None:
        self.taken_at = time.monotonic()
        try:
            proc = subprocess.run(["squeue", "-h", "--states=all", "-u", getpass.getuser(), "-o", FORMAT],
                                  capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.error = f"squeue failed: {exc}"
            return
        if proc.returncode != 0:
            self.error = f"squeue failed: {proc.stderr.strip()[:300]}"
            return
        self.error = ""
        self.jobs = parse_squeue(proc.stdout)
        self.by_id = {job.job_id: job for job in self.jobs.values()}

    def lookup(self, tag: str, index: int | None = None) -> SlurmJob | None:
        if time.monotonic() - self.taken_at >= MIN_INTERVAL:
            self._refresh()
        return self.jobs.get((tag, index))

    def job(self, job_id: str) -> SlurmJob | None:
        """The job with this id (a pilot's: its pods carry the id, not the tag)."""
        if time.monotonic() - self.taken_at >= MIN_INTERVAL:
            self._refresh()
        return self.by_id.get(job_id)

    def any_task(self, tag: str) -> SlurmJob | None:
        """Any array task carrying `tag` (to adopt an array submitted before a crash)."""
        self.lookup(tag)  # refresh if stale
        return next((job for (comment, index), job in self.jobs.items() if comment == tag and index is not None),
                    None)

    def submitted(self, tag: str) -> None:
        """Remember a fresh submission: until a snapshot shows it, it counts as queued, not vanished."""
        self._submitted[tag] = time.monotonic()
        self.taken_at = 0.0  # the next lookup takes a new snapshot

    def recently_submitted(self, tag: str, within: float = 30.0) -> bool:
        at = self._submitted.get(tag)
        return at is not None and time.monotonic() - at < within
