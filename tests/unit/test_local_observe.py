"""The local backend's view of a runner: a runner that starts during the liveness probe is not lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from podline.backends import local
from podline.runtime.files import write_json_atomic


def test_runner_taking_its_lock_right_after_the_probe_is_not_lost(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    rundir = tmp_path / "attempt"
    rundir.mkdir()

    def probe_then_runner_starts(path: Path) -> bool:
        write_json_atomic(path / "started", {"pid": 1})  # the runner locks and marks itself just after the probe
        return True  # ... so the probe found the lock free

    monkeypatch.setattr(local, "_lock_is_free", probe_then_runner_starts)
    seen = local.LocalBackend(tmp_path)._observe(rundir)
    assert seen.state == "running"


def test_runner_gone_without_a_final_status_is_lost(tmp_path: Path) -> None:
    rundir = tmp_path / "attempt"
    rundir.mkdir()
    write_json_atomic(rundir / "started", {"pid": 1})
    (rundir / "runner.log").write_text("Traceback ...\nMemoryError\n")
    seen = local.LocalBackend(tmp_path)._observe(rundir)
    assert seen.state == "lost" and seen.detail == "MemoryError"


def test_nothing_launched_yet_is_unstarted(tmp_path: Path) -> None:
    rundir = tmp_path / "attempt"
    rundir.mkdir()
    assert local.LocalBackend(tmp_path)._observe(rundir).state == "unstarted"
