"""Rules about a pipeline shard's failures that the runner and the controller must agree on: which failures
are final (no new attempt could mend them), how long a step retry waits, and how many cores its steps share.

Kept apart from the runner so that the controller asks the same question without reaching into the runner's
loop, and so that a step retry's back-off is the container restart's (one base, one cap, one doubling).
"""

from __future__ import annotations

import os

from podline.runtime.backoff import doubling_delay
from podline.runtime.container import BACKOFF_BASE, BACKOFF_CAP
from podline.runtime.staging import DatasetNotFound, DatasetTooLarge, ListedFileGone, StagingError

# The shard's own activeDeadlineSeconds (final: the controller does not retry it, as a Job's deadline), told
# apart from Slurm's time limit, also DeadlineExceeded, from which a new attempt resumes.
DEADLINE_MESSAGE = "Pipeline shard was active longer than activeDeadlineSeconds"
# not retried: a new attempt would fail alike
FINAL_REASONS = ("OutputNotFound", "DatasetChanged", "DatasetNotFound", "DatasetTooLarge")


def final_failure(reason: str, message: str) -> bool:
    """A shard failure no new attempt could mend (the controller does not retry it; the runner frees its RAM)."""
    return reason in FINAL_REASONS or (reason, message) == ("DeadlineExceeded", DEADLINE_MESSAGE)


def retry_delay(retries: int) -> float:
    """The back-off before the n-th step retry of an attempt: the base, doubling, at most BACKOFF_CAP."""
    return doubling_delay(retries, BACKOFF_BASE, BACKOFF_CAP)


def stage_in_failure(exc: Exception) -> tuple[str, str]:
    """The shard's reason when its inputs could not be staged in (at its start, or again before a retry that
    found no checkpoint): retried by the controller, unless no new attempt could do better (the pinned listing
    lost a file, the source does not exist, the slice can never fit the sizeLimit)."""
    final = {ListedFileGone: "DatasetChanged", DatasetNotFound: "DatasetNotFound", DatasetTooLarge: "DatasetTooLarge"}
    return final.get(type(exc), "StageInFailed"), f"stage-in: {exc}"


def schedule_failure(exc: Exception) -> tuple[str, str]:
    """The shard's reason when the runner itself could not go on between steps (a rewind's stage-in, a
    checkpoint of a vanished workspace)."""
    if isinstance(exc, StagingError):
        return stage_in_failure(exc)
    return "RunnerError", f"runner: {exc}"


def allocation_cores() -> int:
    """The cores the shard may use at once: its Slurm allocation's, else this process's CPU affinity."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_CPUS_ON_NODE")
    if cpus and cpus.isdigit():
        return int(cpus)
    return len(os.sched_getaffinity(0))
