"""Pilot allocations, the controller's side: a Workflow's step pods queued into one Slurm allocation.

Why: a workflow of N steps as N sbatch jobs waits in Slurm's queue N times (minutes each on a busy cluster;
Argo itself spends ~10 s per hand-off), and a submit costs slurmctld work every time. Parsl and HyperQueue
answer with a pilot job: hold one allocation and feed it work. Here a Workflow annotated `podline.io/pilot`
gets one allocation (per workflow), and each step pod is queued to it by writing a file in the pilot
directory on the shared directory, which the agent inside the allocation (podline.runtime.pilot, where the
layout is described) picks up. The pod's own run directory, plan and status are the same as for a pod with a
job of its own, so everything that reads them is unchanged.

An allocation that is gone (it left idle, reached its time limit, or never started) is replaced by a new
*generation* when a pod is queued or found waiting; each generation carries its own tag in `--comment`, so a
controller that crashed after `sbatch` adopts the job instead of submitting a second one.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podline.api.config import slurm_seconds
from podline.api.pilot import PILOT_ID, PILOT_SIZE, PilotSize, parse_pilot
from podline.backends.base import Observation, SubmitError
from podline.backends.squeue import ACTIVE, LOST_REASON, QUEUED, SlurmJob, SqueueWatcher
from podline.plan.slurm import COMMENT_PREFIX, Placement, container_totals, render_pilot
from podline.runtime.files import STOP_REQUESTED, read_json, write_json_atomic

MARKER = "pilot"  # in a pod's run directory: {"dir": pilot directory, "entry": its queue file's name}
Submit = Callable[[Path, str, str, bool], str]
Finished = Callable[[Path, dict[str, Any], SlurmJob | None, dict[str, str]], Observation]


def pod_needs(manifest: dict[str, Any], time_limit: int | None) -> dict[str, int]:
    """What a pod takes of a pilot: its requests, one core if it asks for none (as its own job would get), and
    the walltime its own job would have (its deadline, else the context's time limit; 0 when unlimited)."""
    needs = container_totals(manifest["spec"])
    needs["cpu"] = needs["cpu"] or 1000
    deadline = manifest["spec"].get("activeDeadlineSeconds")
    needs["seconds"] = math.ceil(int(deadline) / 60) * 60 if deadline else time_limit or 0
    return needs


def pilot_of(manifest: dict[str, Any], time_limit: int | None) -> tuple[str, PilotSize] | None:
    """(pilot id, size) of a step pod that runs in a pilot; None for a pod with a job of its own (none is named,
    or the pod would not fit: larger than the allocation, or needing more time than it has)."""
    found = named_pilot(manifest)
    if found is None:
        return None
    size = found[1]
    needs = pod_needs(manifest, time_limit)
    walltime = size.time or time_limit or 0
    if not size.fits(needs["cpu"], needs["memory"], needs["gpu"]) or (walltime and needs["seconds"] > walltime):
        return None
    return found


def named_pilot(manifest: dict[str, Any]) -> tuple[str, PilotSize] | None:
    """The pilot a step pod's annotations name (set by the workflow controller), fitting or not."""
    annotations = manifest.get("metadata", {}).get("annotations") or {}
    pilot_id, size_text = annotations.get(PILOT_ID), annotations.get(PILOT_SIZE)
    if not pilot_id or not size_text or not pilot_id.replace("-", "").isalnum():
        return None
    try:
        size = parse_pilot(size_text)
    except ValueError:
        return None
    return (pilot_id, size) if size is not None else None


class Pilots:
    def __init__(self, shared: Path, watcher: SqueueWatcher, submit: Submit, placement: Placement) -> None:
        self.root = shared / "pilots"
        self.watcher = watcher
        self.submit = submit
        self.placement = placement

    def directory(self, pilot_id: str) -> Path:
        return self.root / pilot_id

    @staticmethod
    def marker(rundir: Path) -> dict[str, str] | None:
        return read_json(rundir / MARKER)

    # --- queue a pod -----------------------------------------------------------------------------
    def enqueue(self, rundir: Path, manifest: dict[str, Any], pilot_id: str, size: PilotSize) -> None:
        """Queue the attempt (once, however often a launch is repeated) and make sure an allocation takes it."""
        pilotdir = self.directory(pilot_id)
        marker = self.marker(rundir)
        if marker is None:
            for sub in ("queue", "running", "cancel"):
                os.makedirs(pilotdir / sub, mode=0o700, exist_ok=True)
            marker = {"dir": str(pilotdir), "entry": f"{time.time_ns():020d}.{rundir.name}"}
            write_json_atomic(rundir / MARKER, marker)
        entry = marker["entry"]
        taken = (pilotdir / "running" / entry).exists() or (rundir / "started").exists()
        if not taken and not (pilotdir / "queue" / entry).exists():
            needs = pod_needs(manifest, slurm_seconds(self.placement.time_limit))
            write_json_atomic(pilotdir / "queue" / entry, {"rundir": str(rundir), "needs": needs})
        try:
            self.ensure(pilotdir, manifest, size)
        except SubmitError as refused:
            if not refused.transient:  # the pod fails with Slurm's words: it must never run later
                self.claim(rundir, marker)
            raise

    def make_room(self, pilot_id: str) -> None:
        """A step of this pilot's workflow runs as a job of its own: the pilot leaves as soon as it has nothing to
        run, so that it does not hold the cores that job may wait for (a new one comes for the next steps)."""
        pilotdir = self.directory(pilot_id)
        if pilotdir.is_dir():
            (pilotdir / "yield").touch()

    def ensure(self, pilotdir: Path, manifest: dict[str, Any] | None = None, size: PilotSize | None = None) -> str:
        """The job id of a live allocation for this pilot, submitting a new generation if there is none."""
        state = read_json(pilotdir / "pilot-job") or {}
        generation, job_id = int(state.get("generation", 0)), state.get("job")
        if generation and job_id and self._alive(self._tag(pilotdir, generation)) \
                and not (pilotdir / "exiting").exists():
            return str(job_id)
        if not generation or job_id:  # a job id of None: the last submit may have gone through: adopt it
            generation += 1
        write_json_atomic(pilotdir / "pilot-job", {"generation": generation, "job": None})
        if manifest is not None and size is not None:
            meta = manifest["metadata"]
            write_json_atomic(pilotdir / "pilot.json", {
                "size": size.render(), "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "annotations")
                                                    if k in meta}})
        described = read_json(pilotdir / "pilot.json")
        if described is None:
            raise SubmitError(f"pilot {pilotdir.name} has no description to submit it from")
        size = parse_pilot(described["size"]) or PilotSize()
        for mark in ("exiting", "yield"):  # the last allocation's, not the next one's
            try:
                (pilotdir / mark).unlink()
            except FileNotFoundError:
                pass
        tag = self._tag(pilotdir, generation)
        script = render_pilot({"metadata": described["metadata"]}, tag[len(COMMENT_PREFIX):], str(pilotdir), size,
                              self.placement)
        job_id = self.submit(pilotdir, script, tag, True)
        write_json_atomic(pilotdir / "pilot-job", {"generation": generation, "job": job_id})
        return job_id

    @staticmethod
    def _tag(pilotdir: Path, generation: int) -> str:
        return f"{COMMENT_PREFIX}pilot.{pilotdir.name}.{generation}"

    def _alive(self, tag: str) -> bool:
        job = self.watcher.lookup(tag)
        if job is not None:
            return job.state in QUEUED or job.state in ACTIVE
        return bool(self.watcher.error) or self.watcher.recently_submitted(tag)

    def _current(self, pilotdir: Path) -> SlurmJob | None:
        state = read_json(pilotdir / "pilot-job") or {}
        generation = int(state.get("generation", 0))
        return self.watcher.lookup(self._tag(pilotdir, generation)) if generation else None

    # --- observe ---------------------------------------------------------------------------------
    def observe(self, rundir: Path, marker: dict[str, str], finished: Finished) -> Observation:
        pilotdir, entry = Path(marker["dir"]), marker["entry"]
        doc = read_json(rundir / "status.json")
        taken_by = _read(rundir / "slurm-job-id")
        job = self.watcher.job(taken_by) if taken_by else self._current(pilotdir)
        info = {"pilot": pilotdir.name, **({"slurmJobId": job.job_id, "slurmState": job.state,
                                            "slurmReason": job.reason, "slurmNode": job.node} if job else
                                           {"slurmJobId": taken_by} if taken_by else {})}
        if doc and doc.get("finished"):
            return finished(rundir, doc, job, info)
        if taken_by is None:
            if (pilotdir / "queue" / entry).exists():
                return self._waiting(pilotdir, job, info)
            if (pilotdir / "running" / entry).exists():  # just taken, or its agent died before saying by whom
                if job is not None and job.state not in QUEUED and job.state not in ACTIVE:
                    return Observation("lost", doc["status"] if doc else None, info=info, reason="RunnerLost",
                                       detail=f"pilot job {job.job_id} ended {job.state} as it took the pod")
                return Observation("running", doc["status"] if doc else None, info=info)
            if doc:  # its runner started (it wrote a status) in a pilot that is gone: never run it a second time
                return Observation("lost", doc["status"], info=info, reason="RunnerLost",
                                   detail="its pilot ended before saying which job ran it")
            return Observation("unstarted", info=info)  # the entry is lost: a launch queues it again
        if job is None:
            if self.watcher.error:
                return Observation("running", doc["status"] if doc else None, info=info)
            return Observation("lost", doc["status"] if doc else None, info=info, reason="NodeLost",
                               detail=f"pilot job {taken_by} left the queue without a final status")
        if job.state in ACTIVE or job.state in QUEUED:  # queued: a snapshot older than the take
            if (pilotdir / "running" / entry).exists():
                return Observation("running", doc["status"] if doc else None, job.node or None, info=info)
            doc = read_json(rundir / "status.json")  # ended: its final word, or none (the runner died)
            if doc and doc.get("finished"):
                return finished(rundir, doc, job, info)
            return Observation("lost", doc["status"] if doc else None, job.node or None, reason="RunnerLost",
                               detail=f"its runner in pilot job {job.job_id} exited without a final status", info=info)
        doc = read_json(rundir / "status.json")  # the runner may have finished just now
        if doc and doc.get("finished"):
            return finished(rundir, doc, job, info)
        return Observation("lost", doc["status"] if doc else None, job.node or None,
                           detail=f"pilot job {job.job_id} ended {job.outcome}",
                           reason=LOST_REASON.get(job.state, "RunnerLost"), info=info)

    def _waiting(self, pilotdir: Path, job: SlurmJob | None, info: dict[str, str]) -> Observation:
        """A queued pod: its allocation still waits in Slurm's queue, or is busy; a gone one is replaced."""
        try:
            job_id = self.ensure(pilotdir)
        except SubmitError as refused:
            if refused.transient:
                return Observation("queued", detail=f"pilot allocation: {refused}", info=info)
            return Observation("lost", detail=f"the pilot allocation was refused: {refused}", reason="SubmitFailed",
                               info=info)
        if job is not None and job.job_id == job_id and job.state in QUEUED:
            return Observation("queued", detail=f"pilot job {job_id} {job.state} ({job.reason})", info=info)
        return Observation("queued", detail=f"waiting for room in pilot job {job_id}", info=info)

    # --- stop ------------------------------------------------------------------------------------
    def cancel(self, rundir: Path, marker: dict[str, str], hard: bool) -> None:
        """Ask the agent to stop the pod: SIGTERM to its runner (its grace period), or with `hard` SIGKILL to all."""
        (rundir / STOP_REQUESTED).touch()
        cancel = Path(marker["dir"]) / "cancel" / marker["entry"]
        if cancel.parent.is_dir() and _read(cancel) != "kill":
            write_json_atomic(cancel, "kill" if hard else "term")

    def claim(self, rundir: Path, marker: dict[str, str]) -> bool:
        """Take a pod that never started out of the queue (the agent's rename and this unlink exclude each other)."""
        pilotdir, entry = Path(marker["dir"]), marker["entry"]
        try:
            (pilotdir / "queue" / entry).unlink()
        except FileNotFoundError:
            if (pilotdir / "running" / entry).exists():
                return False
        started = read_json(rundir / "started")
        if started is None:
            write_json_atomic(rundir / "started", {"claimed": True})
        return True

    def release(self, pilot_id: str, delete: bool = False) -> None:
        """No more pods will come: the agent leaves once idle, and an allocation still waiting for nodes is
        cancelled. With `delete` (the workflow is deleted, its pods are gone) the allocation is cancelled
        whatever it does and its directory removed."""
        pilotdir = self.directory(pilot_id)
        if not pilotdir.is_dir():
            return
        (pilotdir / "stop").touch()
        job = self._current(pilotdir)
        waiting = job is not None and job.state in QUEUED and not any((pilotdir / "queue").iterdir())
        if job is not None and (waiting or (delete and job.state in ACTIVE)):
            _scancel(job.job_id)
        if delete:
            shutil.rmtree(pilotdir, ignore_errors=True)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip().strip('"') or None
    except OSError:
        return None


def _scancel(job_id: str) -> None:
    try:
        subprocess.run(["scancel", job_id], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        pass
