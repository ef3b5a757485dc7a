"""The small interface every backend offers the controller: launch, observe, cancel, clean up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

# unstarted: nothing was launched (or the launch was lost): launch again
# queued:    accepted by a scheduler, waiting for resources (the pod stays Pending with the reason)
# running / finished: the runner is alive / has written its final status
# lost:      the attempt ended without a final status (runner killed, node failure, time limit, OOM)
RunState = Literal["unstarted", "queued", "running", "finished", "lost"]


@dataclass
class Observation:
    """What a backend knows about one attempt. `status` is the runner's Kubernetes-shaped pod status."""

    state: RunState
    status: dict[str, Any] | None = None
    node: str | None = None
    detail: str = ""  # for "queued" and "lost": why (scheduler reason, the runner's last words)
    reason: str = ""  # for "lost": a Kubernetes-style reason (DeadlineExceeded, OOMKilled, NodeLost, …)
    info: dict[str, Any] = field(default_factory=dict)  # backend facts for describe (job id, state)
    doubt: str = ""  # the scheduler could not be asked (why): the state is the last one known, maybe stale


class SubmitError(Exception):
    """The backend refused the attempt; `transient` errors are retried, others fail the pod."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class Backend(Protocol):
    name: str
    admits_locally: bool  # True when podline itself must fit pods into this machine's capacity
    supports_arrays: bool  # True when Indexed Jobs become one scheduler array (launch_array)

    def run_dir(self, namespace: str, name: str, uid: str) -> Path: ...

    def launch(self, rundir: Path, plan: dict[str, Any], manifest: dict[str, Any], adopt: bool = True) -> None:
        """Start the attempt (idempotent: never a second runner for one run directory).

        `adopt=False` promises that no earlier launch of this attempt can exist (first try), which lets a
        scheduler backend skip looking for one.
        """
        ...

    def launch_array(self, base: Path, plan: dict[str, Any], job_manifest: dict[str, Any],
                     indexes: list[int], adopt: bool = True) -> str:
        """Submit one array whose task I runs `base/I` from the plan template; return the array's job id.

        With `adopt`, first look for an array an earlier attempt submitted (after a crash) and take it.
        """
        ...

    def throttle_array(self, job_id: str, parallelism: int) -> None:
        """Let at most `parallelism` tasks of a submitted array run at once (a scaled Job); 0 holds its pending
        tasks, a later N > 0 releases them. Raises SubmitError when the scheduler refuses (`transient` to retry).
        """
        ...

    def cancel_pending(self, job_id: str) -> bool:
        """Cancel the tasks of a submitted array that have not started (its Job is over: none may start now);
        False when that could not even be asked (to be tried again)."""
        ...

    def observe(self, rundir: Path) -> Observation: ...

    def cancel(self, rundir: Path, hard: bool = False) -> None: ...

    def claim(self, rundir: Path) -> bool:
        """Mark an attempt that never started as done, so a late runner exits; False if it is running."""
        ...

    def release(self, group: str, delete: bool = False) -> None:
        """No more pods of this group (a Workflow's uid) will come: an allocation kept for them may end; with
        `delete` the group is gone for good (its pods too): nothing of it may stay."""
        ...

    def begin_pass(self) -> None:
        """Once per controller pass: reap children, refresh the one batched scheduler query, …"""
        ...

    def end_pass(self) -> None:
        """Once per controller pass, after the work: get ready for the next one (e.g. a warm submitter)."""
        ...

    def close(self) -> None:
        """The controller stops: release processes or connections the backend keeps between passes."""
        ...

    def cleanup(self, rundir: Path, pod_uid: str) -> None: ...
