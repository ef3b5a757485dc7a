"""Cancelling an array task that never started: its run directory (`<array dir>/<index>`) does not exist yet,
since the task's runner makes it. The cancel must still happen, or the pod stays lost-but-uncancelled and a
Job (or `podline delete`) waits on it forever."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from podline.api.config import Context
from podline.backends.slurm import SlurmBackend
from podline.backends.squeue import parse_squeue
from podline.runtime.files import STOP_REQUESTED, write_json_atomic

UID = "11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize("hard", [True, False])
def test_cancel_of_a_task_without_run_directory_marks_and_cancels_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     hard: bool) -> None:
    backend = SlurmBackend("hpc", Context(backend="slurm", shared_dir=str(tmp_path)), tmp_path)
    backend.watcher.jobs = parse_squeue(f"42_2|CANCELLED|None||podline:{UID}\n")
    backend.watcher.taken_at = time.monotonic() + 3600  # no real squeue during the test
    base = backend.run_dir("default", "arr", UID)
    base.mkdir(parents=True)
    write_json_atomic(base / "array.json", {"indexes": "0-3"})
    (base / "slurm-job-id").write_text("42\n")
    cancelled: list[tuple[str, ...]] = []
    monkeypatch.setattr(backend, "_scancel_nowait", lambda *args: cancelled.append(args))
    task = base / "2"
    seen = backend.observe(task)
    assert seen.state == "lost" and seen.reason == "Cancelled"
    backend.cancel(task, hard=hard)
    assert (task / STOP_REQUESTED).exists() and (task.stat().st_mode & 0o777) == 0o700
    assert cancelled == [("42_2",)] if hard else [("--batch", "--signal=TERM", "42_2")]


def test_a_task_whose_runner_began_after_the_snapshot_is_not_claimed(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """squeue said PENDING a moment ago, but the runner has started: claiming it would scancel it hard (no grace
    period; its containers got SIGTERM twice). helper-72's delete-right-after-start."""
    backend = SlurmBackend("hpc", Context(backend="slurm", shared_dir=str(tmp_path)), tmp_path)
    backend.watcher.jobs = parse_squeue(f"42_2|PENDING|JobArrayTaskLimit||podline:{UID}\n")
    backend.watcher.taken_at = time.monotonic() + 3600
    base = backend.run_dir("default", "arr", UID)
    (base / "2").mkdir(parents=True)
    write_json_atomic(base / "array.json", {"indexes": "0-3"})
    (base / "slurm-job-id").write_text("42\n")
    cancelled: list[tuple[str, ...]] = []
    monkeypatch.setattr(backend, "_scancel_nowait", lambda *args: cancelled.append(args))
    write_json_atomic(base / "2" / "started", {"pid": 7, "at": "now", "node": "n1"})
    assert backend.claim(base / "2") is False and cancelled == []
    write_json_atomic(base / "2" / "started", {"claimed": True})  # an earlier claim: it stays claimed
    assert backend.claim(base / "2") is True


def test_scancels_run_in_the_background_once_each_and_are_reaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """One scancel per arguments at a time (a pass per 0.5 s re-asking a hard cancel spawned one each time), reaped
    with its failure logged; a stuck one is killed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "scancel").write_text(f'#!/bin/sh\necho "$*" >> {calls}\nsleep "${{SLEEP:-0.3}}"\n'
                                     'echo "scancel: error: Kill job error on job id $1" >&2\nexit 1\n')
    (bin_dir / "scancel").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    backend = SlurmBackend("hpc", Context(backend="slurm", shared_dir=str(tmp_path)), tmp_path)
    assert backend._scancel_nowait("42_1") and backend._scancel_nowait("42_1") and backend._scancel_nowait("42_2")
    backend._reap_signals(wait=5.0)
    assert sorted(calls.read_text().split()) == ["42_1", "42_2"] and backend._signals == {}
    assert "scancel 42_1: exit 1 scancel: error: Kill job error on job id 42_1" in caplog.text
    monkeypatch.setenv("SLEEP", "30")
    backend._scancel_nowait("43")
    monkeypatch.setattr("podline.backends.slurm.SCANCEL_TIMEOUT", 0.0)
    backend.begin_pass()  # stuck past the timeout: killed
    assert backend._signals == {}
