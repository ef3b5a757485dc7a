"""Which run of a container `logs` prints: the current one, `-p` the one before (while it waits in its back-off,
the run that just ended, as the kubelet serves it from lastState), and `--tail N` read backwards in blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from podline.cli import watch
from podline.runtime.files import mark_attempt
from podline.store.db import Obj


def _log(tmp_path: Path, runs: list[bytes]) -> Path:
    path = tmp_path / "c.log"
    for run in runs:
        earlier = path.exists()
        with open(path, "ab") as log:
            mark_attempt(path, log.tell(), earlier)
            log.write(run)
    return path


def _pod(state: str) -> Obj:
    status = {"phase": "Running", "containerStatuses": [{"name": "c", "state": {state: {}}, "restartCount": 2}]}
    return Obj("u", "Pod", "default", "p", json.dumps({"metadata": {"name": "p"}, "spec": {}}), 1, status, {}, None,
               False, 0.0, None)


def test_previous_is_the_run_before_the_current_one_or_the_last_while_waiting(
        tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    path = _log(tmp_path, [b"first\n", b"second\n", b"third\n"])
    watch._print_previous(path, _pod("running"), "c", -1)
    assert capsysbinary.readouterr().out == b"second\n"
    watch._print_previous(path, _pod("waiting"), "c", -1)  # in its back-off: no current run
    assert capsysbinary.readouterr().out == b"third\n"


def test_tail_reads_only_the_end_of_a_long_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    lines = [f"line {i}\n".encode() for i in range(5000)]
    path = _log(tmp_path, [b"old run\n", b"".join(lines)])
    monkeypatch.setattr(watch, "TAIL_BLOCK", 64)  # many blocks, lines cut across them
    end = watch._print_tail(path, len(b"old run\n"), 3)
    assert capsysbinary.readouterr().out == b"".join(lines[-3:]) and end == path.stat().st_size
    watch._print_tail(path, len(b"old run\n"), 6000)  # more than there are: the whole run, not the old one
    assert capsysbinary.readouterr().out == b"".join(lines)
    path.write_bytes(b"no newline at the end")
    watch._print_tail(path, 0, 1)
    assert capsysbinary.readouterr().out == b"no newline at the end"


def test_a_first_run_from_byte_0_goes_unrecorded(tmp_path: Path) -> None:
    """Most containers run once: no `.starts` file for them (a file less per pod start, P5), the 0 implied once
    the log exists."""
    path = tmp_path / "c.log"
    assert watch.attempt_starts(path) == []  # not run yet
    path.write_bytes(b"")
    mark_attempt(path, 0, earlier=False)
    assert not path.with_suffix(".starts").exists() and watch.attempt_starts(path) == [0]
    mark_attempt(path, 10, earlier=True)
    assert watch.attempt_starts(path) == [0, 10]


def test_runs_that_printed_nothing_still_count(tmp_path: Path) -> None:
    """helper-81: a second run at byte 0 (the first printed nothing) went unrecorded, so `logs` numbered the
    later runs one too low and `-p` found no previous run."""
    path = _log(tmp_path, [b"", b"", b"third\n"])
    assert watch.attempt_starts(path) == [0, 0, 0]
    watch._print_previous(path, _pod("running"), "c", -1)  # the second run: it printed nothing


def test_a_pipeline_step_log_marks_each_later_attempt_once(tmp_path: Path,
                                                           capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """helper-81: with the newest attempt silent so far, its line was printed again at every poll."""
    path = _log(tmp_path, [b"one\n", b""])
    marked: set[int] = set()
    offset = watch._stream_attempts(path, 0, "s", marked)
    offset = watch._stream_attempts(path, offset, "s", marked)  # a poll later, still nothing new
    with open(path, "ab") as log:
        log.write(b"two\n")
    watch._stream_attempts(path, offset, "s", marked)
    captured = capsysbinary.readouterr()
    assert captured.out == b"one\ntwo\n" and captured.err == b"--- step s: attempt 2 ---\n"
