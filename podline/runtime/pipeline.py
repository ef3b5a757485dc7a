"""The pipeline runner: one shard of a Pipeline, its steps as a DAG over one shared workspace.

It resumes from the newest trustworthy checkpoint (see `runtime.workspace`), then starts every step whose
dependencies are done, as many at once as the allocation's cores allow. Hand-off between steps is
event-driven: a finishing step wakes the scheduler through the same event the container workers use, so
the next step starts within milliseconds. Checkpoints are taken at quiescent points (no step running):
after each step in a chain; with parallel branches, new steps wait while a checkpoint is due.

A failed step (restartPolicy OnFailure, within the retry budget) is retried after the workspace is put
back to the newest checkpoint. The plan file is re-read before each step starts, so an `apply` of a
changed spec reaches steps that have not started yet; each step records the generation it ran with.
Status is written to `status.json` in the run directory (same contract as the pod runner).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from podline.runtime.container import ContainerWorker, terminate_all
from podline.runtime.engine import Engine, ImagePullFailed
from podline.runtime.expand import container_env, expand
from podline.runtime.files import notify_address, rfc3339, stop_requested, write_status
from podline.runtime.staging import StagingError
from podline.runtime.volumes import shm_root
from podline.runtime.workspace import GivenUp, Workspace

BACKOFF_BASE = float(os.environ.get("PODLINE_RESTART_BACKOFF_SECONDS", "1"))
CHECK_INTERVAL = 1.0


def allocation_cores() -> int:
    cpus = os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_CPUS_ON_NODE")
    if cpus and cpus.isdigit():
        return int(cpus)
    return len(os.sched_getaffinity(0))


class PipelineRunner:
    def __init__(self, plan: dict[str, Any], rundir: Path, index: int | None, plan_path: Path) -> None:
        self.plan, self.rundir, self.plan_path = plan, rundir, plan_path
        self.plan_stamp = _stamp(plan_path)
        self.shard = index if index is not None else int(plan.get("shard") or 0)
        self.shards = int(plan["shards"])
        self.shard_dir = Path(plan["shardDir"].replace("{shard}", str(self.shard)))  # logs/, across attempts
        self.pod = {**plan["pod"], "name": f"{plan['pod']['name']}-{self.shard}"}
        self.workspace = Workspace(plan, self.shard, self._log, on_saved=self._wake,
                                   given_up=lambda: stop_requested(rundir))
        shm = shm_root() / f"podline-{plan['pod']['uid']}-{self.shard}.shm"
        self.engine = Engine(plan, self.pod, {"workspace": self.workspace.path}, self.shard_dir, shm)
        self.specs = {s["name"]: s for s in plan["steps"]}
        self.order = [s["name"] for s in plan["steps"]]
        self.steps = {n: {"name": n, "phase": "Pending", "attempts": 0, "generation": None,
                          "restoredFrom": None} for n in self.order}
        self.done: list[str] = []
        self.running: dict[str, ContainerWorker] = {}
        self.cores = allocation_cores()
        retries = plan["retries"]  # per shard: what earlier attempts left of backoffLimit
        self.retries_left = int(retries.get(str(self.shard), 0) if isinstance(retries, dict) else retries)
        self.stopping = threading.Event()
        self.changed = threading.Event()
        self.stop_reason: tuple[str, str] | None = None
        self.phase = "Pending"
        self.status: dict[str, Any] = {"shard": self.shard, "startTime": rfc3339(), "restoredFrom": None,
                                       "stepRetries": 0, "timings": {}, "checkpoints": {}}
        self.notify_address = notify_address(plan)

    def _wake(self) -> None:
        """A background L2 copy is complete: the scheduler writes the status that says so."""
        self.changed.set()

    def _log(self, message: str) -> None:
        print(f"{rfc3339()} shard {self.shard}: {message}", flush=True)

    # --- status --------------------------------------------------------------------------------------
    def write_status(self, finished: bool = False) -> None:
        self.status.update(phase=self.phase, steps=[dict(self.steps[n]) for n in self.order],
                           checkpoints=dict(self.workspace.saved))
        if self.engine.images:
            self.status["images"] = self.engine.report()
        if self.stop_reason:
            self.status["reason"], self.status["message"] = self.stop_reason
        write_status(self.rundir, self.status, finished, self.notify_address)

    def request_stop(self, reason: str, message: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = (reason, message)
        self.workspace.stop_requested()
        self.stopping.set()
        self.changed.set()

    # --- plan updates ----------------------------------------------------------------------------------
    def _reload_plan(self) -> None:
        """Take a newer plan's step specs for steps that have not started yet."""
        stamp = _stamp(self.plan_path)
        if stamp == self.plan_stamp:
            return
        self.plan_stamp = stamp
        try:
            plan = json.loads(self.plan_path.read_text())
        except (OSError, ValueError):
            return
        for spec in plan["steps"]:
            if spec["name"] in self.steps and self.steps[spec["name"]]["attempts"] == 0:
                self.specs[spec["name"]] = spec
        self.plan["generation"] = plan.get("generation")

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
        finished = set(self.done)
        return [n for n in self.order if n not in finished and n not in self.running
                and all(d in finished for d in self.specs[n]["dependsOn"])]

    def _start(self, name: str) -> None:
        self._reload_plan()
        spec = self.specs[name]
        step = self.steps[name]
        try:
            self.engine.prepare([spec], self.stopping)  # a step updated by `apply` may name a new image
        except ImagePullFailed as exc:
            step.update(phase="Failed", reason=exc.reason, message=str(exc))
            self.request_stop(exc.reason, f"step {name}: {exc}")
            return
        worker = ContainerWorker(self._resolve(spec), self.engine, "Never", False, self.shard_dir, self.stopping,
                                 self.changed.set)
        step.update(phase="Running", attempts=step["attempts"] + 1, startedAt=rfc3339(),
                    generation=self.plan.get("generation"))  # restoredFrom: what a retry started from
        step.pop("finishedAt", None)
        self.running[name] = worker
        worker.start()

    def _capacity_left(self) -> bool:
        used = sum(max(1, -(-self.specs[n].get("cpuMillis", 0) // 1000)) for n in self.running)
        return used < self.cores

    def _settle(self, name: str, worker: ContainerWorker, why: tuple[str, str] | None = None) -> bool:
        """Record a finished step (`why`: the runner's own reason for stopping it); True if it succeeded."""
        del self.running[name]
        term = worker.snapshot()["state"].get("terminated", {})
        step = self.steps[name]
        step.update(finishedAt=rfc3339(), exitCode=term.get("exitCode"))
        if worker.succeeded():
            step.update(phase="Succeeded")
            step.pop("reason", None)
            self.done.append(name)
            return True
        exited = term.get("message") or f"exit code {term.get('exitCode')}"
        reason, message = why or (term.get("reason", "Error"), exited)
        step.update(phase="Failed", reason=reason, message=message)
        self._log(f"step {name} failed: {step['message']}")
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
            self.stop_reason = self.stop_reason or ("StageInFailed", f"stage-in: {exc}")
            self.write_status(finished=True)
            return 1
        self.phase = "Running"
        self.write_status()
        began = time.monotonic()
        try:
            self._schedule()
        finally:
            terminate_all(list(self.running.values()), float(self.plan["terminationGracePeriodSeconds"]))
            self.engine.remove_shm()
        ok = len(self.done) == len(self.order) and not self.stopping.is_set()
        self.workspace.settle_copies()  # told to stop: bounded by the grace period
        self.status["timings"]["compute"] = round(time.monotonic() - began, 3)
        if self.workspace.waited:
            self.status["timings"]["checkpointWait"] = round(self.workspace.waited, 3)
        if ok:
            began = time.monotonic()
            try:
                self.status["stageOutBytes"] = self.workspace.stage_out(self.plan["outputs"], self.shard,
                                                                        self.shards)
            except OSError as exc:  # e.g. the destination is not writable: the steps' work stays (L1, L2)
                ok = False
                self.stop_reason = ("StageOutFailed", f"stage-out: {exc}")
            except GivenUp as exc:
                ok = False
                self.stop_reason = ("GivenUp", str(exc))
                self._log(str(exc))
            self.status["timings"]["stageOut"] = round(time.monotonic() - began, 3)
        self.phase = "Succeeded" if ok else "Failed"
        self.write_status(finished=True)
        if ok:  # a failed shard keeps its workspace: it is the L1 checkpoint a later attempt resumes from
            self.workspace.release()
        return 0 if ok else 1

    def _prepare_images(self) -> bool:
        """Every step's image before anything runs or is staged: a bad image fails the shard at once."""
        try:
            self.engine.make_shm()
            self.engine.prepare(self.specs.values(), self.stopping)
        except ImagePullFailed as exc:
            self.engine.remove_shm()
            self.phase = "Failed"
            self.stop_reason = self.stop_reason or (exc.reason, f"step {exc.container}: {exc}")
            self.steps[exc.container].update(phase="Failed", reason=exc.reason, message=str(exc))
            self.write_status(finished=True)
            return False
        finally:
            if self.engine.images:
                self.status["timings"]["imagePrepare"] = round(self.engine.prepare_seconds, 3)
        return True

    def _resume_or_stage_in(self) -> None:
        began = time.monotonic()
        snap, level = self.workspace.restore()
        if snap is not None:
            self.status.update(restoredFrom=level, restoredSeq=snap.seq)
            for name in snap.steps:
                if name in self.steps:
                    self.steps[name].update(phase="Succeeded", restoredFrom=level)
                    self.done.append(name)
            self.status["timings"]["restore"] = round(time.monotonic() - began, 3)
            return
        staged = self.workspace.stage_in(self.plan["inputs"], self.shards)
        self.status["staging"] = staged.to_json()
        self.status["stageInBytes"] = staged.bytesCopied + staged.bytesReused
        self.status["timings"]["stageIn"] = round(time.monotonic() - began, 3)

    def _schedule(self) -> None:
        deadline = self.plan.get("activeDeadlineSeconds")
        deadline_at = time.time() + deadline if deadline else None
        checkpoint_due, retry_due, major = False, False, False
        while not self.stopping.is_set():
            if not self.running and (checkpoint_due or retry_due):
                # A step that failed while others ran left its leftovers among their results: no checkpoint of
                # that mix; the rewind goes back to the last one, and what finished since runs again.
                if checkpoint_due and not retry_due:
                    self._checkpoint(major)
                if retry_due:
                    self._rewind()
                checkpoint_due = retry_due = major = False
                if self.stopping.is_set():  # told to stop during the checkpoint or the back-off: start nothing
                    break
            if not checkpoint_due and not retry_due:
                for name in self._ready():
                    if not self._capacity_left():
                        break
                    self._start(name)
                self.write_status()
            if not self.running:
                break
            self.changed.wait(self._timeout(deadline_at))
            self.changed.clear()
            for name, worker in list(self.running.items()):
                if not worker.finished:
                    continue
                if self._settle(name, worker):
                    checkpoint_due = True
                    major = major or self.specs[name].get("checkpoint") == "major"
                elif self.plan["restartPolicy"] == "OnFailure" and self.retries_left > 0:
                    self.retries_left -= 1
                    self.status["stepRetries"] += 1  # counts against backoffLimit
                    retry_due = True
                else:
                    self.request_stop("StepFailed", f"step {name} failed: {self.steps[name].get('message')}")
            self._enforce_limits(deadline_at)
        self.write_status()

    def _timeout(self, deadline_at: float | None) -> float | None:
        timeout = CHECK_INTERVAL if self.workspace.size_limit else None
        if deadline_at is not None:
            timeout = max(0.0, min(timeout or CHECK_INTERVAL * 60, deadline_at - time.time()))
        return timeout

    def _enforce_limits(self, deadline_at: float | None) -> None:
        if deadline_at is not None and time.time() >= deadline_at:
            self.request_stop("DeadlineExceeded", "Pipeline shard was active longer than activeDeadlineSeconds")
        over = self.workspace.usage_over_limit() if self.running else None
        if over:
            self.request_stop("WorkspaceLimitExceeded", over)
        if self.stopping.is_set():
            terminate_all(list(self.running.values()), float(self.plan["terminationGracePeriodSeconds"]))
            for name, worker in list(self.running.items()):
                self._settle(name, worker, self.stop_reason)

    def _checkpoint(self, major: bool) -> None:
        began = time.monotonic()
        self.workspace.checkpoint(self.done, major)
        self.status["timings"]["checkpoint"] = round(self.status["timings"].get("checkpoint", 0)
                                                     + time.monotonic() - began, 3)

    def _rewind(self) -> None:
        """Before a retry: the workspace goes back to the newest checkpoint (a failed step's leftovers go)."""
        snap, level = self.workspace.restore()
        if snap is None:
            self.workspace.stage_in(self.plan["inputs"], self.shards)
        keep = set(snap.steps) if snap else set()
        for name in [n for n in self.done if n not in keep]:
            self.steps[name].update(phase="Pending")
        self.done = [n for n in self.done if n in keep]
        for step in self.steps.values():
            if step["phase"] == "Failed":
                step["phase"] = "Pending"
                step["restoredFrom"] = level
        self.stopping.wait(BACKOFF_BASE)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
