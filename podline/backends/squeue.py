"""One watcher per Slurm backend: a single `squeue` call per controller pass answers for every job.

Per-pod `squeue -j` calls are what make peers slow and hammer slurmctld; here one snapshot (all of this
user's jobs, finished ones included while Slurm keeps them, `MinJobAge`) is taken at most every
`MIN_INTERVAL` seconds and indexed by podline's tag in the job comment (`podline:<uid>`), and by array task.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass, field

from podline.plan.ranges import expand

QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "CONFIGURING", "POWER_UP_NODE"}
ACTIVE = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING", "SUSPENDED", "STOPPED"}
LOST_REASON = {"TIMEOUT": "DeadlineExceeded", "DEADLINE": "DeadlineExceeded", "OUT_OF_MEMORY": "OOMKilled",
               "NODE_FAIL": "NodeLost", "BOOT_FAIL": "NodeLost", "CANCELLED": "Cancelled", "PREEMPTED": "Preempted"}
# Slurm's pending reasons for a job that cannot start as submitted until the partition, its limits or the request
# change (Kubernetes' Unschedulable, with a FailedScheduling warning); Resources, Priority and the like just wait.
NEVER_FITS = frozenset({"PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints",
                        "InvalidAccount", "InvalidQOS", "QOSMaxCpuPerJobLimit", "QOSMaxMemoryPerJob",
                        "QOSMaxNodePerJobLimit", "QOSMaxWallDurationPerJobLimit", "AssocMaxCpuPerJobLimit",
                        "AssocMaxWallDurationPerJobLimit", "AssocMaxNodesPerJobLimit"})
MIN_INTERVAL = 1.0
FORMAT = "%i|%T|%r|%N|%k"
# `-r`: one line per array task, so a pending array is never a compressed (`58_[0-12:2]`) or cut-off
# (`58_[1-2,4-5,8,1`) task list; SLURM_BITSTR_LEN=0 keeps any list that still comes whole. Both matter: one line
# misread must not hide another job's tasks (they would look lost) nor fail the pass.
COMMAND = ["squeue", "-h", "-r", "--states=all", "-o", FORMAT]
_ARRAY = re.compile(r"^(\d+)_(\d+)$")
_PENDING_ARRAY = re.compile(r"^(\d+)_\[(.+)\]$")
log = logging.getLogger("podline.controller")


@dataclass
class SlurmJob:
    job_id: str  # "123", or "123_4" for an array task
    state: str
    reason: str
    node: str
    comment: str

    @property
    def outcome(self) -> str:
        """Its state and Slurm's reason, if Slurm gives one (squeue says "None" when it has none)."""
        return f"{self.state} ({self.reason})" if self.reason not in ("", "None", "(null)") else self.state


@dataclass
class Snapshot:
    """One squeue answer, indexed; `unreadable` holds the lines that could not be read, by their comment."""

    jobs: dict[tuple[str, int | None], SlurmJob] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)


def read_squeue(text: str) -> Snapshot:
    """Index squeue lines by (comment, array index or None); pending array ranges are expanded. A line that
    cannot be read is set aside with its comment, never an error for the whole snapshot."""
    snap = Snapshot()
    for line in text.splitlines():
        fields = line.split("|", 4)
        if len(fields) != 5:
            continue
        job_id, state, reason, node, comment = fields
        if single := _ARRAY.match(job_id):
            snap.jobs[(comment, int(single[2]))] = SlurmJob(job_id, state, reason, node, comment)
        elif "_[" not in job_id:  # a plain job (or a foreign kind, "12+0": never one of podline's tasks)
            snap.jobs[(comment, None)] = SlurmJob(job_id, state, reason, node, comment)
        else:
            try:
                pending = _PENDING_ARRAY.match(job_id)
                if pending is None:  # cut off: the rest of the task list is unknown
                    raise ValueError("truncated task list")
                indexes = expand(pending[2])
            except ValueError:
                snap.unreadable[comment] = line
                continue
            for index in indexes:
                snap.jobs[(comment, index)] = SlurmJob(f"{pending[1]}_{index}", state, reason, node, comment)
    return snap


def parse_squeue(text: str) -> dict[tuple[str, int | None], SlurmJob]:
    """The readable part of a squeue answer (see `read_squeue`)."""
    return read_squeue(text).jobs


class SqueueWatcher:
    def __init__(self) -> None:
        self.jobs: dict[tuple[str, int | None], SlurmJob] = {}
        self.by_id: dict[str, SlurmJob] = {}
        self.unreadable: dict[str, str] = {}
        self.taken_at = 0.0  # when the snapshot in `jobs` was taken (a failed query leaves it as it was)
        self.tried_at = 0.0  # when squeue last ran: at most one query per MIN_INTERVAL, answered or not
        self.error = ""
        self._submitted: dict[str, float] = {}
        self._last_state: dict[tuple[str, int | None], str] = {}  # each job's state in the last snapshot showing it
        self._logged: set[str] = set()

    def _stale(self) -> bool:
        return time.monotonic() - max(self.taken_at, self.tried_at) >= MIN_INTERVAL

    def _refresh(self) -> None:
        self.tried_at = time.monotonic()
        env = {**os.environ, "SLURM_BITSTR_LEN": "0"}
        try:
            proc = subprocess.run([*COMMAND, "-u", getpass.getuser()], capture_output=True, text=True, timeout=60,
                                  env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.error = f"squeue failed: {exc}"
            return
        if proc.returncode != 0:
            self.error = f"squeue failed: {proc.stderr.strip()[:300]}"
            return
        snap = read_squeue(proc.stdout)
        self.error, self.taken_at = "", self.tried_at
        self.jobs, self.unreadable = snap.jobs, snap.unreadable
        self.by_id = {job.job_id: job for job in self.jobs.values()}
        if len(self._last_state) > 100_000:  # what left the queue long ago is forgotten
            self._last_state = {}
        self._last_state.update({key: job.state for key, job in self.jobs.items()})
        # Once squeue shows a submission, its absence means it is gone (a pending task cancelled outside podline
        # leaves no line at all): no more grace.
        shown = {comment for comment, _ in self.jobs}
        self._submitted = {tag: at for tag, at in self._submitted.items() if tag not in shown}
        for line in snap.unreadable.values():
            if line not in self._logged and len(self._logged) < 100:  # once per line, not once per pass
                self._logged.add(line)
                log.warning("squeue line not understood, skipped: %s", line[:300])

    def last_state(self, tag: str, index: int | None = None) -> str | None:
        """The state a job had in the last snapshot that showed it (None: never seen by this controller)."""
        return self._last_state.get((tag, index))

    def uncertain(self, tag: str) -> str:
        """Why a job carrying `tag` that the snapshot lacks may still exist ("" if absence means gone):
        squeue failed, or the line of that job could not be read."""
        if self.error:
            return self.error
        return f"squeue line not understood: {self.unreadable[tag][:200]}" if tag in self.unreadable else ""

    def lookup(self, tag: str, index: int | None = None) -> SlurmJob | None:
        if self._stale():
            self._refresh()
        return self.jobs.get((tag, index))

    def job(self, job_id: str) -> SlurmJob | None:
        """The job with this id (a pilot's: its pods carry the id, not the tag)."""
        if self._stale():
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
        self.taken_at = self.tried_at = 0.0  # the next lookup takes a new snapshot

    def recently_submitted(self, tag: str, within: float = 30.0) -> bool:
        at = self._submitted.get(tag)
        return at is not None and time.monotonic() - at < within
