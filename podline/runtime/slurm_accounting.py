"""What Slurm's accounting records for a batch job podline stopped.

A delete (or a Job's end) stops a pod by signalling its runner, the batch script, which ends its containers with
their grace period and exits non-zero: Slurm would record the job FAILED, skewing site statistics and whatever
reads sacct. A user's cancel should read CANCELLED, as `scancel` leaves it; so the runner, its status written,
cancels its own job.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from podline.runtime.files import stop_requested


def account_as_cancelled(rundir: Path) -> None:
    """A batch job podline stopped (a delete, a Job's end) ends CANCELLED in Slurm's accounting, as `scancel`
    would leave it, not FAILED with the runner's exit code (site statistics and sacct-based tools read it):
    the runner, its work done and its status written, cancels its own job (its SIGTERM finds nothing left)."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job or not stop_requested(rundir):
        return
    if os.environ.get("SLURM_ARRAY_TASK_ID"):
        job = f"{os.environ.get('SLURM_ARRAY_JOB_ID', job)}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    try:
        subprocess.run(["scancel", job], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        pass
