"""A pipeline shard's step retries (restartPolicy OnFailure): the rewind to the newest checkpoint, the back-off,
and what ends a retry before it runs.

A retry rewinds the workspace only when that loses no finished step's work: nothing else runs and a checkpoint
(the workspace as L1 describes it, or a copy) holds every step done. Otherwise (a sibling still running, or one
that finished since the newest checkpoint) the failed step is retried in place once its back-off is over, over
what its failed attempt left, as kubelet restarts a container over its emptyDir, while the other branches go on:
a finished step is never run again for a sibling's failure.

Kept apart from the runner's loop (runtime.pipeline, which this is mixed into) because the retry budget has
three owners that must agree: the runner grants a retry when a step fails, `apply` may lower backoffLimit
while the retry waits (the retry is then refused at once: the README promises a new limit reaches a running
shard within a second), and the controller counts a stopped attempt as one failure (a retry granted for a
step that died of the same stop is given back, so a scancel or a time limit counts once).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from podline.runtime import checkpoint as ck
from podline.runtime import step_records
from podline.runtime.shard_rules import retry_delay
from podline.runtime.staging import StagingError
from podline.runtime.step_specs import retries_for

if TYPE_CHECKING:
    from podline.runtime.workspace import Workspace

CHECK_INTERVAL = 1.0  # how often a waiting runner looks at its plan again (sizeLimit, `apply`)


class StepRetries:
    """`_rewind` and its back-off; see the module docstring."""

    plan: dict[str, Any]
    shard: int
    shards: int
    workspace: Workspace
    steps: dict[str, dict[str, Any]]
    done: list[str]
    status: dict[str, Any]
    stopping: threading.Event
    retries_left: int
    granted: list[str]
    retry_at: dict[str, float]  # steps retried in place: when (time.monotonic()) each may start again
    running: dict[str, Any]
    stop_reason: tuple[str, str] | None

    if TYPE_CHECKING:  # the runner's, used here
        def _deadline_at(self) -> float | None: ...
        def write_status(self, finished: bool = False) -> None: ...
        def request_stop(self, reason: str, message: str, culprit: str | None = None) -> None: ...
        def _reload_plan(self) -> None: ...

    def _rewind_due(self) -> bool:
        """A retry was granted: True if the workspace goes back to a checkpoint first (`_rewind`, when nothing
        is running); else the steps granted one wait out their back-off and start again in place."""
        if not self.running and self._restorable(set(self.done)):
            return True
        delay = self._retry_delay()
        for name in self.granted:
            if name not in self.retry_at:
                self.retry_at[name] = time.monotonic() + delay
                step_records.waiting_for_retry(self.steps[name], None, delay, in_place=True)
        return False

    def _restorable(self, steps: set[str]) -> bool:
        """Whether a rewind now brings back every one of `steps`: the workspace still as its L1 manifest says
        (the failed step changed nothing), or a copy made after them; none done: the inputs, staged in again."""
        if not steps:
            return True
        workspace = self.workspace
        workspace.settle_copies()
        l1 = ck.read_l1(workspace.l1_path) if workspace.path.is_dir() else None
        if l1 is not None and steps <= set(l1.steps) and ck.l1_matches(workspace.path, l1):
            return True
        return any((hit := ck.newest(root)) is not None and not hit[1].problem and steps <= set(hit[1].steps)
                   for root in workspace.levels.values())

    def _retry_delay(self) -> float:
        deadline_at = self._deadline_at()  # the back-off never outlasts activeDeadlineSeconds
        left = deadline_at - time.time() if deadline_at is not None else float("inf")
        return max(0.0, min(retry_delay(self.status["stepRetries"]), left))

    def _rewind(self) -> None:
        """Before a retry: the workspace goes back to the newest checkpoint (a failed step's leftovers go)."""
        snap, level = self.workspace.restore()
        if snap is None:
            try:
                self.workspace.stage_in(self.plan["inputs"], self.shards)
            except OSError as exc:  # the source is unreachable now
                raise StagingError(str(exc)) from exc
        keep = set(snap.steps) if snap else set()
        for name in [n for n in self.done if n not in keep]:
            step_records.rewound(self.steps[name])
        self.done = [n for n in self.done if n in keep]
        delay = self._retry_delay()
        for step in self.steps.values():
            if step["phase"] == "Failed":
                step_records.waiting_for_retry(step, level, delay)
        self.write_status()
        self._back_off(delay)

    def _back_off(self, delay: float) -> None:
        """Wait out the back-off, looking at the plan every CHECK_INTERVAL: a lowered backoffLimit that this
        retry is past fails the step for good at once. A stop ends the wait (run settles the retries)."""
        ends = time.monotonic() + delay
        while (left := ends - time.monotonic()) > 0:
            if self.stopping.wait(min(CHECK_INTERVAL, left)):
                return
            self._reload_plan()
            if self._limit_lowered():
                return

    def _limit_lowered(self) -> bool:
        """A backoffLimit lowered below the retries granted: the steps waiting for theirs fail for good."""
        if retries_for(self.plan, self.shard) >= self.status["stepRetries"]:
            return False
        last = self.status.get("lastStepRetry") or {}
        for step in self.steps.values():
            if step.get("reason") == "BackOff":
                step_records.retry_cancelled(step, None)
        self.request_stop("StepFailed", f"step {last.get('step')} failed: {last.get('message')} "
                          "(backoffLimit lowered while its retry waited)", last.get("step"))
        return True

    def _retries_not_run(self) -> None:
        """The shard stopped with step retries granted that never ran (in their back-off, or before the rewind
        began). A step killed by a signal (143, 137, not OOMKilled) most likely died of the stop, which came a
        moment later (Slurm signals the runner and the steps of a scancelled or timed-out job together): its
        retry is given back, so the interruption counts once, and its record says the stop ended it. A step
        that failed on its own keeps its own failure."""
        why = self.stop_reason or ("Terminated", "stopped")
        for name in self.granted:
            step = self.steps[name]
            failure = step.get("lastFailure") or {"reason": step.get("reason")}
            killed = step_records.killed_by_signal(step.get("exitCode"), failure.get("reason"))
            if step.get("reason") == "BackOff" or killed:
                step_records.retry_cancelled(step, why if killed else None)
            if killed:
                self.status["stepRetries"] -= 1
                self.retries_left += 1
        self.granted.clear()
