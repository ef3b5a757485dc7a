"""The Slurm backend: one pod attempt = one batch job (HPK's model) running the podline pod runner.

Run directories live on the context's shared directory, so the runner inside the allocation and the
controller outside see the same `plan.json`, `status.json` and logs. Every job carries `podline:<uid>` in
`--comment`: after a controller crash between `sbatch` and recording the job id, the next launch finds
the job by that tag and adopts it instead of submitting again. Status comes from the runner's files,
with the batched `squeue` snapshot for queue state and for jobs that ended without a word (time limit,
out of memory, node failure, cancellation).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podline.api.config import Context, shared_dir, slurm_seconds
from podline.api.slurmflags import FlagError, flags_from_annotations
from podline.backends.base import Observation, SubmitError
from podline.backends.pilot import Pilots, named_pilot, pilot_of
from podline.backends.sbatch import Sbatch
from podline.backends.squeue import ACTIVE, LOST_REASON, QUEUED, SlurmJob, SqueueWatcher
from podline.plan.ranges import compress
from podline.plan.slurm import COMMENT_PREFIX, Placement, render_indexed_job, render_pod
from podline.runtime.files import STOP_REQUESTED, read_json, write_json_atomic

log = logging.getLogger(__name__)
SCANCEL_TIMEOUT = 60.0  # a scancel still running after this long is killed (slurmctld not answering)
TRANSIENT = ("Unable to contact slurm controller", "Socket timed out", "temporarily unable",
             "Resource temporarily unavailable", "Connection refused", "Zero Bytes were transmitted")


def _fault(point: str) -> None:
    """Failure injection for crash tests: die like SIGKILL at a named point (PODLINE_FAULT=point)."""
    if os.environ.get("PODLINE_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _signalled(manifest: dict[str, Any]) -> bool:
    """Do the pod's Slurm flags ask for `--signal`? (Flags refused now fail the pod when rendered.)"""
    try:
        flags = flags_from_annotations(manifest.get("metadata", {}).get("annotations") or {})
    except FlagError:
        return False
    return any(option.startswith("--signal=") for option in flags)


def _rendered(render: Callable[..., str], *args: Any, **kwargs: Any) -> str:
    """A batch script; flags checked when the object was applied but refused by this version (an object stored
    before, with a `--signal` the runner cannot honour, say) fail the pod, as sbatch's refusal would."""
    try:
        return render(*args, **kwargs)
    except FlagError as exc:
        raise SubmitError(str(exc)) from None


class SlurmBackend:
    name = "slurm"
    admits_locally = False
    supports_arrays = True

    def __init__(self, context_name: str, ctx: Context, home: Path, notify: str = "") -> None:
        self.context_name = context_name
        self.shared = shared_dir(home, ctx)
        self.placement = Placement(ctx.partition, ctx.account, ctx.qos, ctx.time_limit, sys.executable)
        self.notify = notify
        self.watcher = SqueueWatcher()
        self.sbatch = Sbatch()
        self.pilots = Pilots(self.shared, self.watcher, self.submit, self.placement)
        self._final_seen: dict[str, float] = {}  # run dir -> when its "Terminated" was first read (monotonic)
        # scancels not waited for, by their arguments (one at a time each), with when they started; reaped in
        # begin_pass, killed when stuck
        self._signals: dict[tuple[str, ...], tuple[subprocess.Popen[bytes], float]] = {}

    # --- where -----------------------------------------------------------------------------------
    def run_dir(self, namespace: str, name: str, uid: str) -> Path:
        return self.shared / "pods" / namespace / name / uid

    @staticmethod
    def _tag_and_index(rundir: Path) -> tuple[str, int | None]:
        """A pod's own job is tagged with its uid; an array task's run directory is `<array dir>/<index>`."""
        if (rundir.parent / "array.json").exists() and rundir.name.isdigit():
            return COMMENT_PREFIX + rundir.parent.name, int(rundir.name)
        return COMMENT_PREFIX + rundir.name, None

    def _job_id(self, rundir: Path) -> str | None:
        tag, index = self._tag_and_index(rundir)
        base = rundir.parent if index is not None else rundir
        try:
            job = (base / "slurm-job-id").read_text().strip()
        except OSError:
            found = self.watcher.lookup(tag, index)
            return found.job_id if found else None
        return f"{job}_{index}" if index is not None else job

    # --- launch ----------------------------------------------------------------------------------
    def submit(self, directory: Path, script: str, tag: str, adopt: bool = True,
               meanwhile: Callable[[], None] = lambda: None) -> str:
        """sbatch a script kept in `directory` (with `adopt`, first take a job already carrying `tag`);
        `meanwhile` is the launch's bookkeeping that the job does not need (see `Sbatch.submit`)."""
        known = (self.watcher.lookup(tag) or self.watcher.any_task(tag)) if adopt else None
        doubt = self.watcher.uncertain(tag) if known is None and adopt else ""
        if doubt:  # an old snapshot, or a line squeue wrote that could not be read, could hide the earlier attempt
            raise SubmitError(f"not submitting until an earlier attempt can be ruled out: {doubt}", transient=True)
        if known is not None:
            meanwhile()
            job_id = known.job_id.split("_", 1)[0]
        else:
            try:
                proc = self.sbatch.submit(script, directory, meanwhile)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SubmitError(f"sbatch could not run: {exc}", transient=True) from None
            if proc.returncode < 0:  # killed mid-way: the job may be queued, the next attempt adopts it
                raise SubmitError(f"sbatch was killed by signal {-proc.returncode}", transient=True)
            if proc.returncode != 0:
                message = " ".join(proc.stderr.split()) or f"sbatch exited {proc.returncode}"
                raise SubmitError(message, transient=any(t in message for t in TRANSIENT))
            job_id = proc.stdout.strip().split(";", 1)[0]
            _fault("after-sbatch")
        (directory / "slurm-job-id").write_text(job_id + "\n")
        self.watcher.submitted(tag)
        return job_id

    def launch(self, rundir: Path, plan: dict[str, Any], manifest: dict[str, Any], adopt: bool = True) -> None:
        os.makedirs(rundir, mode=0o700, exist_ok=True)
        if (rundir / "started").exists() or (rundir / "slurm-job-id").exists():
            return
        write_json_atomic(rundir / "plan.json", {**plan, "notify": self.notify})
        # A pod asking for a timed signal gets its own job: in a pilot, the signal would go to the whole
        # allocation, whose agent does not forward it to one pod, at a time set by the pilot's limit.
        pilot = None if _signalled(manifest) else pilot_of(manifest, slurm_seconds(self.placement.time_limit))
        if pilot is not None:
            self.pilots.enqueue(rundir, manifest, *pilot)
            return
        named = named_pilot(manifest)
        if named is not None:  # too large for its workflow's pilot
            self.pilots.make_room(named[0])
        script = _rendered(render_pod, manifest, rundir.name, str(rundir), self.placement)
        self.submit(rundir, script, COMMENT_PREFIX + rundir.name, adopt)

    def launch_array(self, base: Path, plan: dict[str, Any], job_manifest: dict[str, Any],
                     indexes: list[int], adopt: bool = True) -> str:
        os.makedirs(base, mode=0o700, exist_ok=True)
        existing = base / "slurm-job-id"
        if existing.exists():
            return existing.read_text().strip()
        write_json_atomic(base / "plan.json", {**plan, "notify": self.notify})  # the runner's: before sbatch
        script = _rendered(render_indexed_job, job_manifest, base.name, str(base), self.placement, indexes,
                           pipeline=plan.get("kind") == "Pipeline")
        return self.submit(base, script, COMMENT_PREFIX + base.name, adopt, meanwhile=lambda: write_json_atomic(
            base / "array.json", {"indexes": compress(indexes)}))  # the controller's: read once its pods exist

    def throttle_array(self, job_id: str, parallelism: int) -> None:
        """`scontrol update ArrayTaskThrottle=N`; for Slurm a throttle of 0 means no limit, so parallelism 0
        is `scontrol hold` instead (pending tasks wait, running ones go on), and N > 0 releases them first.
        scontrol answers per task and fails if any task has finished: only other answers are refusals, and an
        array Slurm no longer knows has nothing left to throttle."""
        steps = [["hold", job_id]] if parallelism == 0 else [
            ["release", job_id], ["update", f"JobId={job_id}", f"ArrayTaskThrottle={parallelism}"]]
        for step in steps:
            try:
                proc = subprocess.run(["scontrol", *step], capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SubmitError(f"scontrol could not run: {exc}", transient=True) from None
            said = [line.strip() for line in (proc.stderr + "\n" + proc.stdout).splitlines() if line.strip()]
            refusals = [line for line in said if not line.endswith((": No error", ": Job has already finished"))]
            if proc.returncode == 0 or not refusals or any("Invalid job id" in line for line in refusals):
                continue
            message = " ".join(refusals)[:300]
            raise SubmitError(f"scontrol {step[0]} {job_id}: {message}", transient=any(t in message for t in TRANSIENT))

    # --- observe ---------------------------------------------------------------------------------
    def observe(self, rundir: Path) -> Observation:
        seen = self._observe(rundir)
        seen.doubt = self.watcher.error  # squeue failed: what it last said may be old (the controller warns)
        return seen

    def _observe(self, rundir: Path) -> Observation:
        marker = self.pilots.marker(rundir)
        if marker is not None:
            return self.pilots.observe(rundir, marker, self._finished)
        doc = read_json(rundir / "status.json")
        tag, index = self._tag_and_index(rundir)
        job = self.watcher.lookup(tag, index)
        info = self._info(rundir, job)
        if doc and doc.get("finished"):
            return self._finished(rundir, doc, job, info)
        if job is None:
            return self._not_in_queue(rundir, (tag, index), doc, info)
        if job.state in QUEUED:
            return Observation("queued", detail=f"Slurm job {job.job_id} {job.state} ({job.reason})", info=info)
        if job.state in ACTIVE:
            return Observation("running", doc["status"] if doc else None, job.node or None, info=info)
        doc = read_json(rundir / "status.json")  # the runner may have finished just now
        if doc and doc.get("finished"):
            return self._finished(rundir, doc, job, info)
        return Observation("lost", doc["status"] if doc else None, job.node or None,
                           detail=f"Slurm job {job.job_id} ended {job.outcome}",
                           reason=LOST_REASON.get(job.state, "RunnerLost"), info=info)

    def _finished(self, rundir: Path, doc: dict[str, Any], job: SlurmJob | None, info: dict[str, str]) -> Observation:
        """The runner's final word. A runner stopped by SIGTERM only knows it was stopped ("Terminated");
        when Slurm sent that signal, not podline (time limit, pre-emption, node failure, an admin's scancel),
        Slurm's verdict names the reason: while the job is still completing the attempt counts as running, then
        it takes it. A snapshot older than that word may lack a job submitted just before, or show it still
        PENDING: the first one the controller takes after reading the word decides (its own clock only: the
        word's mtime is the file server's)."""
        status = doc["status"]
        if status.get("reason") != "Terminated" or (rundir / STOP_REQUESTED).exists():
            return Observation("finished", status, doc.get("node"), info=info)
        if job is None or job.state in QUEUED:  # only a snapshot taken after this word was read can tell
            seen = self._final_seen.setdefault(str(rundir), time.monotonic())
            if self.watcher.taken_at <= seen:
                return Observation("running", None, doc.get("node"), info=info)
        self._final_seen.pop(str(rundir), None)
        if job is None:
            return Observation("finished", status, doc.get("node"), info=info)
        if job.state in ACTIVE:  # not the runner's status yet: it would settle the pod before the verdict
            return Observation("running", None, doc.get("node"), info=info)
        if job.state in LOST_REASON:  # CANCELLED too: podline's own stops are marked, so this was an admin's scancel
            status = {**status, "reason": LOST_REASON[job.state],
                      "message": f"Slurm job {job.job_id} ended {job.outcome}"}
        return Observation("finished", status, doc.get("node"), info=info)

    def _not_in_queue(self, rundir: Path, key: tuple[str, int | None], doc: dict[str, Any] | None,
                      info: dict[str, str]) -> Observation:
        tag = key[0]
        job_id = self._job_id(rundir)
        if job_id is None:
            return Observation("unstarted", info=info)
        doubt = self.watcher.uncertain(tag)
        if doubt or self.watcher.recently_submitted(tag):
            detail = doubt or f"Slurm job {job_id} submitted"
            return Observation("queued" if doc is None else "running", doc["status"] if doc else None,
                               detail=detail, info=info)
        # last seen waiting and gone without its runner starting: scancel'led in the queue (a pending array task
        # cancelled leaves no line at all); a job this controller never saw waiting stays a lost node's
        if doc is None and not (rundir / "started").exists() and self.watcher.last_state(*key) in QUEUED:
            return Observation("lost", detail=f"Slurm job {job_id} left the queue before it started (cancelled)",
                               reason="Cancelled", info=info)
        return Observation("lost", doc["status"] if doc else None, detail=f"Slurm job {job_id} left the queue "
                           "without a final status", reason="NodeLost", info=info)

    def _info(self, rundir: Path, job: SlurmJob | None) -> dict[str, str]:
        if job is not None:
            return {"slurmJobId": job.job_id, "slurmState": job.state, "slurmReason": job.reason,
                    "slurmNode": job.node}
        job_id = self._job_id(rundir)
        return {"slurmJobId": job_id} if job_id else {}

    # --- stop ------------------------------------------------------------------------------------
    def _scancel_nowait(self, *args: str) -> bool:
        """scancel without waiting for it: it delivers a signal at once but may take seconds to return (5 s for a
        task of an array with pending tasks), and a pass stopping a Job's tasks one after the other stalled the
        controller for a grace period per task while pending tasks started meanwhile. The same scancel still on
        its way is not started again. False: it could not be started."""
        running = self._signals.get(args)
        if running is not None and running[0].poll() is None:
            return True
        try:
            proc = subprocess.Popen(["scancel", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as exc:
            log.warning("scancel %s could not start: %s", " ".join(args), exc)
            return False
        self._signals[args] = (proc, time.monotonic())
        return True

    def _reap_signals(self, wait: float = 0.0) -> None:
        """Forget the scancels that returned (saying why one failed), kill those stuck past SCANCEL_TIMEOUT; with
        `wait`, first give them that long altogether."""
        deadline = time.monotonic() + wait
        for args, (proc, started) in list(self._signals.items()):
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                if time.monotonic() - started < SCANCEL_TIMEOUT and not wait:
                    continue
                proc.kill()
                proc.wait()
            said = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            if proc.stderr:
                proc.stderr.close()
            if proc.returncode:
                log.warning("scancel %s: exit %s %s", " ".join(args), proc.returncode, said[:300])
            del self._signals[args]

    def cancel_pending(self, job_id: str) -> bool:
        return self._scancel_nowait("--state=PENDING", job_id)

    def cancel(self, rundir: Path, hard: bool = False) -> None:
        marker = self.pilots.marker(rundir)
        if marker is not None:
            self.pilots.cancel(rundir, marker, hard)
            return
        job_id = self._job_id(rundir)
        if job_id is None:
            return
        # The runner's "Terminated" is then podline's doing, not Slurm's. A pending array task has no run
        # directory yet (its runner makes it): made here, or the cancel fails on every pass and never happens.
        rundir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (rundir / STOP_REQUESTED).touch()
        if hard:
            self._scancel_nowait(job_id)
        else:  # SIGTERM to the batch step only: the runner stops its containers with their grace period
            self._scancel_nowait("--batch", "--signal=TERM", job_id)

    def claim(self, rundir: Path) -> bool:
        marker = self.pilots.marker(rundir)
        if marker is not None:
            return self.pilots.claim(rundir, marker)
        started = read_json(rundir / "started")
        if isinstance(started, dict) and not started.get("claimed"):
            return False  # its runner began after the last squeue snapshot (which said PENDING): stop it gently
        tag, index = self._tag_and_index(rundir)
        job = self.watcher.lookup(tag, index)
        if job is not None and job.state in ACTIVE:
            return False
        job_id = self._job_id(rundir)
        if job_id is not None:
            self._scancel_nowait(job_id)
        rundir.mkdir(parents=True, exist_ok=True)
        if not (rundir / "started").exists():
            write_json_atomic(rundir / "started", {"claimed": True})
        return True

    def cleanup(self, rundir: Path, pod_uid: str) -> None:
        shutil.rmtree(rundir, ignore_errors=True)
        for parent in (rundir.parent, rundir.parent.parent):
            try:
                parent.rmdir()  # only if empty
            except OSError:
                break

    def release(self, group: str, delete: bool = False) -> None:
        self.pilots.release(group, delete)

    def begin_pass(self) -> None:
        """Reap the scancels that returned; the squeue snapshot is taken on the first lookup of a pass (at most
        every second)."""
        self._reap_signals()

    def end_pass(self) -> None:
        self.sbatch.keep_warm()

    def close(self) -> None:
        self.sbatch.close()
        self._reap_signals(wait=15.0)  # a stop asked for just before the controller stops still happens
