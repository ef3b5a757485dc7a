"""What a pipeline step's record in the shard's status says, as the step starts, ends, waits for a retry or
is stopped.

The record is what `describe` shows per step and what the controller merges across attempts: a phase, the
attempts, the generation of the spec it ran, when it started and ended, the checkpoint level a retry
restored, and a reason and message only while they are true (why it failed, why it waits, why it was
stopped); a succeeded step carries no reason of an earlier attempt.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from podline.runtime.container import KILLED
from podline.runtime.files import rfc3339

Record = dict[str, Any]


def new_record(name: str) -> Record:
    return {"name": name, "phase": "Pending", "attempts": 0, "generation": None, "restoredFrom": None}


def started(step: Record, generation: int | None) -> None:
    """A run begins: the back-off it waited out and the failure that made it due are over."""
    step.update(phase="Running", attempts=step["attempts"] + 1, startedAt=rfc3339(), generation=generation)
    for over in ("finishedAt", "exitCode", "reason", "message", "lastFailure"):
        step.pop(over, None)


def succeeded(step: Record, exit_code: int | None) -> None:
    step.update(phase="Succeeded", finishedAt=rfc3339(), exitCode=exit_code)
    step.pop("reason", None)
    step.pop("message", None)


def failed(step: Record, reason: str, message: str, exit_code: int | None = None, ended: bool = True) -> None:
    """`ended`: it ran (an image that could not be pulled never started it)."""
    step.update(phase="Failed", reason=reason, message=message)
    if ended:
        step.update(finishedAt=rfc3339(), exitCode=exit_code)


def image_back_off(step: Record, message: str) -> None:
    """Its image cannot be pulled yet (the registry unreachable): Pending until a retry of the pull works."""
    step.update(phase="Pending", reason="ImagePullBackOff", message=message)


def images_pulled(steps: Iterable[Record]) -> None:
    for step in steps:
        if step.get("reason") == "ImagePullBackOff":
            step.pop("reason")
            step.pop("message", None)


def waiting_for_retry(step: Record, level: str | None, delay: float, in_place: bool = False) -> None:
    """A failed step in the back-off before its retry (as a container in CrashLoopBackOff), the workspace put
    back to checkpoint `level`, or left as it is (`in_place`); how it failed is kept for `retry_cancelled`."""
    why = step.get("message") or step.get("reason") or "failed"
    step["lastFailure"] = {"reason": step.get("reason", "Error"), "message": why}
    where = " in place (a rewind would lose a finished sibling's work)" if in_place else ""
    step.update(phase="Pending", restoredFrom=level, reason="BackOff",
                message=f"back-off {delay:g}s restarting failed step{where} ({why})")


def retry_cancelled(step: Record, why: tuple[str, str] | None) -> None:
    """Its retry will not run: Failed, for `why` (the shard's stop) or, None, as it last failed."""
    last = step.pop("lastFailure", None) or {"reason": step.get("reason") or "Error",
                                             "message": step.get("message") or "failed"}
    reason, message = why or (last["reason"], last["message"])
    failed(step, reason, message, ended=False)


def stopped_why(name: str, stop_reason: tuple[str, str] | None, culprit: str | None) -> tuple[str, str] | None:
    """Why a running step was stopped: the shard's reason, unless another step's failure stopped it (it did
    not fail on its own account, as a Job's other pods are not failures when one fails the Job)."""
    if stop_reason is None or culprit in (None, name):
        return stop_reason
    return "Stopped", f"stopped: {stop_reason[1]}"


def rewound(step: Record) -> None:
    """A step done before the checkpoint the workspace went back to: it runs again (its last run's end is
    no longer this record's)."""
    step["phase"] = "Pending"
    for over in ("finishedAt", "exitCode"):
        step.pop(over, None)


def killed_by_signal(exit_code: int | None, reason: str | None) -> bool:
    """Ended by SIGTERM/SIGKILL from outside (143, 137), not by its own memory limit: a stop that came for the
    whole shard (Slurm signals the runner and the steps of a scancelled or timed-out job together)."""
    return exit_code in KILLED and reason != "OOMKilled"
