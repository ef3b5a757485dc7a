"""The pipeline runner: one shard of a Pipeline, its steps as a DAG over one shared workspace.

It resumes from the newest trustworthy checkpoint (see `runtime.workspace`), then starts every step whose
dependencies are done, as many at once as the allocation's cores allow. Hand-off between steps is
event-driven: a finishing step wakes the scheduler through the same event the container workers use, so
the next step starts within milliseconds. Checkpoints are taken at quiescent points (no step running), so
that none holds a running step's half-written files: after each step in a chain; with parallel branches, at
the next moment nothing runs. Ready steps wait for that moment when the checkpoint due would write an L2 or
L3 copy (the policy asks for one: nodeLocalEvery, sharedEvery, a step marked `checkpoint: major`), and before
a retry, which rewinds the workspace; when only L1 is due they go on (a branch of short steps would idle
behind a long sibling for a checkpoint nobody asked to keep), and L1 is taken at the next quiescent point.

A failed step (restartPolicy OnFailure, within the retry budget) is retried after the workspace is put
back to the newest checkpoint, when that loses no finished step's work; else in place (runtime.pipeline_retries).
The workspace's sizeLimit is checked every second while steps run and again
as each step ends (a step that fills it within a second fails itself, before it counts as done). The plan
file is re-read while steps run (at most a second late) and before each step starts, so an `apply` of a
changed spec reaches every step not running at that moment, including one waiting for its retry (each
step records the generation of the spec it ran: `runtime.step_specs`), and a new backoffLimit or
activeDeadlineSeconds applies to the shard at once. Status is written to `status.json`
in the run directory (same contract as the pod runner) when it changes; a step's end is written before
anything that delays the next step's start (a sibling still running, a rewind, a copy it waits for).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from podline.runtime import step_records
from podline.runtime.container import ContainerWorker, terminate_all
from podline.runtime.engine import QUICK_RETRIES, Engine, ImagePullFailed
from podline.runtime.expand import container_env, expand
from podline.runtime.files import notify_address, rfc3339, stop_requested, write_status
from podline.runtime.pipeline_retries import CHECK_INTERVAL, StepRetries
from podline.runtime.shard_rules import (
    DEADLINE_MESSAGE,
    allocation_cores,
    final_failure,
    schedule_failure,
    stage_in_failure,
)
from podline.runtime.shard_start import ShardStart
from podline.runtime.staging import StagingError
from podline.runtime.step_specs import StepSpecs, retries_for
from podline.runtime.volumes import shm_root
from podline.runtime.workspace import GivenUp, OutputNotFound, Workspace


class PipelineRunner(ShardStart, StepRetries):
    def __init__(self, plan: dict[str, Any], rundir: Path, index: int | None, plan_path: Path) -> None:
        self.plan, self.rundir, self.plan_path = plan, rundir, plan_path
        self.shard = index if index is not None else int(plan.get("shard") or 0)
        self.shards = int(plan["shards"])
        self.shard_dir = Path(plan["shardDir"].replace("{shard}", str(self.shard)))  # logs/, across attempts
        self.pod = {**plan["pod"], "name": f"{plan['pod']['name']}-{self.shard}"}
        self.workspace = Workspace(plan, self.shard, self.log, on_saved=self._wake,
                                   given_up=lambda: stop_requested(rundir))
        holder = shm_root() / f"podline-{plan['pod']['uid']}-{self.shard}.shm"  # the steps' /dev/shm is in it
        self.engine = Engine(plan, self.pod, {"workspace": self.workspace.path}, self.shard_dir, holder / "dev",
                             (holder, plan["dirs"].get("shared") or "", plan.get("owner") or ""))
        self.step_specs = StepSpecs(plan, plan_path)
        self.specs = self.step_specs.specs  # what each step runs now or next (updated in place)
        self.order = [s["name"] for s in plan["steps"]]
        self.steps = {n: step_records.new_record(n) for n in self.order}
        self.done: list[str] = []
        self.running: dict[str, ContainerWorker] = {}
        self.cores = int(plan.get("cores") or 0) or allocation_cores()  # locally: what the controller reserved
        self.retries_left = retries_for(plan, self.shard)  # what earlier attempts left of backoffLimit
        self.granted: list[str] = []  # steps whose retry was granted and has not started yet
        self.retry_at: dict[str, float] = {}  # those retried in place: when their back-off ends
        self.began_at = time.time()  # when the steps began: activeDeadlineSeconds counts from there
        self.stopping = threading.Event()
        self.changed = threading.Event()
        self.stop_reason: tuple[str, str] | None = None
        self.culprit: str | None = None
        self.phase = "Pending"
        self.status: dict[str, Any] = {"shard": self.shard, "startTime": rfc3339(), "restoredFrom": None,
                                       "stepRetries": 0, "timings": {}, "checkpoints": {}}
        self.notify_address = notify_address(plan)
        self.written: str | None = None  # the status last written (an unchanged one is not written again)

    def _wake(self) -> None:
        """A background L2 copy is complete: the scheduler writes the status that says so."""
        self.changed.set()

    def log(self, message: str) -> None:
        print(f"{rfc3339()} shard {self.shard}: {message}", flush=True)

    # --- status --------------------------------------------------------------------------------------
    def write_status(self, finished: bool = False) -> None:
        """Publish the status if it changed (each write wakes the controller); the final one always."""
        self.status.update(phase=self.phase, steps=[dict(self.steps[n]) for n in self.order],
                           checkpoints=dict(self.workspace.saved))
        if self.engine.images:
            self.status["images"] = self.engine.report()
        if self.stop_reason:
            self.status["reason"], self.status["message"] = self.stop_reason
        if self.workspace.rejected:  # copies that failed verification on restore (the controller warns)
            self.status["rejectedCheckpoints"] = list(self.workspace.rejected)
        doc = json.dumps(self.status)  # built in the same order each time: equal text, equal status
        if doc == self.written and not finished:
            return
        self.written = doc
        write_status(self.rundir, self.status, finished, self.notify_address)

    def request_stop(self, reason: str, message: str, culprit: str | None = None) -> None:
        """Stop the shard; `culprit`: the step whose failure stops it (the others were stopped, not failed)."""
        if self.stop_reason is None:
            self.stop_reason = (reason, message)
            self.culprit = culprit
        self.workspace.stop_requested()
        self.stopping.set()
        self.changed.set()

    # --- plan updates ----------------------------------------------------------------------------------
    def _reload_plan(self) -> None:
        """Take a newer plan's step specs for the steps not running now (the running ones take them at their
        next start, should they be retried), and its limits."""
        plan = self.step_specs.newer_plan()
        if plan is None:
            return
        self.step_specs.take(plan, self.running)
        self.plan.update(generation=plan.get("generation"), held=plan.get("held"))  # held: start no step
        self.cores = int(plan.get("cores") or 0) or self.cores  # what the shard holds now
        self._take_limits(plan)

    def _take_limits(self, plan: dict[str, Any]) -> None:
        """A live change of backoffLimit or activeDeadlineSeconds. The plan's `retries` is the new limit less
        earlier attempts' failures; the step retries this attempt made count against it too (as they will
        when the controller counts this attempt). The deadline keeps counting from when the steps began."""
        self.plan.update(retries=plan.get("retries", 0), activeDeadlineSeconds=plan.get("activeDeadlineSeconds"))
        self.retries_left = max(0, retries_for(plan, self.shard) - self.status["stepRetries"])

    # --- steps -----------------------------------------------------------------------------------------
    def _resolve(self, spec: dict[str, Any]) -> dict[str, Any]:
        mount = self.plan["workspace"]["mountPath"]
        first = {"JOB_COMPLETION_INDEX": str(self.shard), "PODLINE_SHARD": str(self.shard),
                 "PODLINE_SHARDS": str(self.shards), "PODLINE_WORKSPACE": mount}
        env = container_env(spec["env"], first)
        return {**spec, "env": env, "command": [expand(a, env) for a in spec["command"]],
                "args": [expand(a, env) for a in spec["args"]], "workingDir": spec.get("workingDir") or
                mount, "mounts": [{"volume": "workspace", "mountPath": mount}]}

    def _ready(self) -> list[str]:
        if self.plan.get("held"):
            return []
        finished, now = set(self.done), time.monotonic()
        return [n for n in self.order if n not in finished and n not in self.running
                and self.retry_at.get(n, now) <= now and all(d in finished for d in self.specs[n]["dependsOn"])]

    def _start(self, name: str) -> None:
        if name in self.granted:
            self.granted.remove(name)  # its retry runs
            self.retry_at.pop(name, None)
        self._reload_plan()
        spec = self.step_specs.starting(name)
        step = self.steps[name]
        try:
            self.engine.prepare([spec], self.stopping, retries=QUICK_RETRIES)  # updated by `apply`: a new image?
        except ImagePullFailed as exc:
            step_records.failed(step, exc.reason, str(exc), ended=False)
            self.request_stop(exc.reason, f"step {name}: {exc}", name)
            return
        worker = ContainerWorker(self._resolve(spec), self.engine, "Never", False, self.shard_dir, self.stopping,
                                 self.changed.set)
        step_records.started(step, self.step_specs.generation_of(name))  # restoredFrom: what a retry started from
        self.running[name] = worker
        worker.start()

    def _fits(self, name: str) -> bool:
        """Within the shard's cores with the running steps (each at least one); alone, any step runs."""
        def cores(step: str) -> int:
            return max(1, -(-self.specs[step].get("cpuMillis", 0) // 1000))
        return not self.running or sum(map(cores, self.running)) + cores(name) <= self.cores

    def _settle(self, name: str, worker: ContainerWorker, why: tuple[str, str] | None = None,
                failed: bool = False) -> bool:
        """Record a finished step (`why`: the runner's reason for stopping it, or with `failed` for failing it
        whatever it exited with); True if it succeeded."""
        del self.running[name]
        term = worker.snapshot()["state"].get("terminated", {})
        step = self.steps[name]
        if worker.succeeded() and not failed:
            step_records.succeeded(step, term.get("exitCode"))
            self.done.append(name)
            return True
        exited = term.get("message") or f"exit code {term.get('exitCode')}"
        reason, message = why or (term.get("reason", "Error"), exited)
        step_records.failed(step, reason, message, term.get("exitCode"))
        self.log(f"step {name} failed: {message}")
        return False

    # --- the loop --------------------------------------------------------------------------------------
    def run(self) -> int:
        (self.shard_dir / "logs").mkdir(parents=True, exist_ok=True)
        if not self._prepare_images():
            return 1
        try:
            self._resume_or_stage_in()
        except (OSError, StagingError) as exc:  # the shard fails with the reason (and may be retried)
            self.engine.remove_shm()
            self.phase = "Failed"
            self.stop_reason = self.stop_reason or stage_in_failure(exc)
            self.write_status(finished=True)
            self._release_if_last_failure()
            return 1
        self.phase = "Running"
        self.write_status()
        began = time.monotonic()
        try:
            self._schedule()
        except (OSError, StagingError) as exc:  # a rewind's stage-in, a checkpoint of a vanished workspace
            self.request_stop(*schedule_failure(exc))
        finally:
            self._stop_running()
            self.engine.remove_shm()
            if self.stopping.is_set():
                self._retries_not_run()
        ok = len(self.done) == len(self.order) and not self.stopping.is_set()
        self.workspace.settle_copies()  # told to stop: bounded by the grace period
        timings = self.status["timings"]
        if self.workspace.waited:
            timings["checkpointWait"] = round(self.workspace.waited, 3)
        checkpoints = timings.get("checkpoint", 0) + timings.get("checkpointWait", 0)  # reported apart
        timings["compute"] = round(max(0.0, time.monotonic() - began - checkpoints), 3)
        if ok:
            began = time.monotonic()
            try:
                self.status["stageOutBytes"] = self.workspace.stage_out(self.plan["outputs"], self.shard,
                                                                        self.shards)
            except OutputNotFound as exc:
                ok = False
                self.stop_reason = ("OutputNotFound", str(exc))
            except OSError as exc:  # e.g. the destination is not writable: the steps' work stays (L1, L2)
                ok = False
                self.stop_reason = ("StageOutFailed", f"stage-out: {exc}")
            except GivenUp as exc:
                ok = False
                self.stop_reason = self.stop_reason or ("GivenUp", str(exc))  # a stop keeps its own reason
                self.log(str(exc))
            self.status["timings"]["stageOut"] = round(time.monotonic() - began, 3)
        self.phase = "Succeeded" if ok else "Failed"
        self.write_status(finished=True)
        if ok:
            self.workspace.release()
        else:
            self._release_if_last_failure()
        return 0 if ok else 1

    def _release_if_last_failure(self) -> None:
        """A failed shard keeps its RAM workspace, the L1 checkpoint a later attempt resumes from; unless this
        failure spent what backoffLimit left (the controller counts it as final then): nothing will resume from
        it, and it would hold the node's memory until the pipeline is deleted. L2 and L3 stay, to look at.
        An attempt podline gave up keeps it: the attempt that replaced it may be resuming from it."""
        reason, message = self.stop_reason or ("", "")
        if (self.retries_left <= 0 or final_failure(reason, message)) and reason != "GivenUp":
            self.workspace.release_ram()

    def _schedule(self) -> None:
        self.began_at = time.time()
        checkpoint_due, retry_due, major = False, False, False
        while not self.stopping.is_set():
            if not self.running and (checkpoint_due or retry_due):
                # (a rewind is due only when it loses no finished step: pipeline_retries; a step retried in
                # place may leave its leftovers in the next checkpoint, as it starts again over them anyway)
                if checkpoint_due and not retry_due:
                    self._checkpoint(major)
                if retry_due:
                    self._rewind()
                checkpoint_due = retry_due = major = False
                if self.stopping.is_set():  # told to stop during the checkpoint or the back-off: start nothing
                    break
            if not retry_due and not (checkpoint_due and self.workspace.copy_due(len(self.done), major)):
                for name in self._ready():
                    if not self._fits(name):
                        break
                    self._start(name)
                self.write_status()
            if not self.running and not self.retry_at and not self.plan.get("held"):
                break
            self.changed.wait(self._timeout())
            self.changed.clear()
            self._reload_plan()  # a new backoffLimit counts for the step that just failed
            if self.retry_at and self._limit_lowered():
                break
            checkpoint, retry, major_step = self._settle_ended()
            retry = retry and self._rewind_due()
            checkpoint_due, retry_due, major = checkpoint_due or checkpoint, retry_due or retry, major or major_step
            if (checkpoint or retry) and self._publish_now(retry_due, major):
                self.write_status()
            self._enforce_limits()
        self.write_status()

    def _publish_now(self, retry_due: bool, major: bool) -> bool:
        """Whether a step that just ended should be published now rather than with the next step's start: when
        something delays that start (a sibling still running, the rewind and its back-off, a copy the next step
        waits for). In a chain with background copies the next write is under a millisecond away."""
        if self.running or retry_due or self.stopping.is_set():
            return True
        workspace = self.workspace
        l3_possible = "L3" in workspace.levels and (major or bool(workspace.policy.get("sharedEvery")))
        l2_waits = bool(workspace.policy.get("nodeLocalEvery")) and (not workspace.background_l2
                                                                      or workspace.copier.torn)
        return l3_possible or l2_waits

    def _settle_ended(self) -> tuple[bool, bool, bool]:
        """Settle the steps that ended; (a checkpoint is due, a retry is due, one of them is major).

        A step that leaves the workspace above its sizeLimit fails with WorkspaceLimitExceeded (as the kubelet
        evicts a pod for its emptyDir), before it counts as done or is checkpointed: filled within a second,
        it would otherwise pass the running steps' poll and the next step would get the blame."""
        ended = [(name, worker) for name, worker in self.running.items() if worker.finished]
        over = self.workspace.usage_over_limit() if ended else None
        checkpoint = retry = major = False
        for name, worker in ended:
            if over:
                self._settle(name, worker, ("WorkspaceLimitExceeded", over), failed=True)
                self.request_stop("WorkspaceLimitExceeded", f"step {name}: {over}")
            elif self.stopping.is_set() and not worker.succeeded():  # no retry: the shard stops (scancel, a time
                # limit, a delete signal the steps too; the controller counts the stop); killed: by the stop
                term = worker.snapshot()["state"].get("terminated", {})
                killed = step_records.killed_by_signal(term.get("exitCode"), term.get("reason"))
                self._settle(name, worker, step_records.stopped_why(name, self.stop_reason, self.culprit)
                             if killed else None)
            elif self._settle(name, worker):
                checkpoint = True
                major = major or self.specs[name].get("checkpoint") == "major"
            elif self.plan["restartPolicy"] == "OnFailure" and self.retries_left > 0:
                self.retries_left -= 1
                self.status["stepRetries"] += 1  # counts against backoffLimit
                self.status["lastStepRetry"] = {"step": name, "reason": self.steps[name].get("reason"),
                                                "message": self.steps[name].get("message")}  # for the event
                self.granted.append(name)
                retry = True
            else:
                self.request_stop("StepFailed", f"step {name} failed: {self.steps[name].get('message')}", name)
        return checkpoint, retry, major

    def _deadline_at(self) -> float | None:
        seconds = self.plan.get("activeDeadlineSeconds")
        return self.began_at + seconds if seconds else None

    def _timeout(self) -> float:
        """Wake at least every CHECK_INTERVAL (sizeLimit, a plan changed by `apply`) and at the deadline."""
        now = time.monotonic()  # a retry due that cannot start yet (no room) waits for a change, not a spin
        wake = min([CHECK_INTERVAL] + [at - now for at in self.retry_at.values() if at > now])
        deadline_at = self._deadline_at()
        return max(0.0, wake if deadline_at is None else min(wake, deadline_at - time.time()))

    def _enforce_limits(self) -> None:
        deadline_at = self._deadline_at()
        if deadline_at is not None and time.time() >= deadline_at:
            self.request_stop("DeadlineExceeded", DEADLINE_MESSAGE)
        over = self.workspace.usage_over_limit() if self.running else None
        if over:
            names = ", ".join(self.running)
            self.request_stop("WorkspaceLimitExceeded", f"step{'s' if len(self.running) > 1 else ''} {names}: {over}")
        if self.stopping.is_set():
            self._stop_running(failed=bool(over))  # one that exited 0 meanwhile still filled the space

    def _stop_running(self, failed: bool = False) -> None:
        """Terminate the running steps (grace period, then SIGKILL) and record why each was stopped."""
        terminate_all(list(self.running.values()), float(self.plan["terminationGracePeriodSeconds"]))
        for name, worker in list(self.running.items()):
            self._settle(name, worker, step_records.stopped_why(name, self.stop_reason, self.culprit), failed)

    def _checkpoint(self, major: bool) -> None:
        began = time.monotonic()
        self.workspace.checkpoint(self.done, major)
        self.status["timings"]["checkpoint"] = round(self.status["timings"].get("checkpoint", 0)
                                                     + time.monotonic() - began, 3)
