"""One squeue line must never break status for the user's other jobs.

squeue compresses a pending array's task list into Slurm's step notation (`58_[0-12:2]`), appends a throttle
(`%5`) and, past SLURM_BITSTR_LEN, cuts the list off without its `]`. Such a line is read when it can be and set
aside when it cannot; a failed query leaves the snapshot's age as it was.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from podline.api.config import Context
from podline.backends import squeue
from podline.backends.slurm import SlurmBackend
from podline.backends.squeue import SqueueWatcher, parse_squeue, read_squeue
from podline.plan.ranges import compress, expand
from podline.runtime.files import write_json_atomic

UID = "11111111-2222-3333-4444-555555555555"


def test_expand_reads_step_notation_and_throttle() -> None:
    assert expand("0-12:2") == [0, 2, 4, 6, 8, 10, 12]
    assert expand("1-7:3%2") == [1, 4, 7]
    assert expand("0-1998:3%5")[:3] == [0, 3, 6] and len(expand("0-1998:3%5")) == 667
    assert expand("2,5-9:2,11") == [2, 5, 7, 9, 11]
    assert expand(compress([0, 1, 2, 5, 7, 8])) == [0, 1, 2, 5, 7, 8]


@pytest.mark.parametrize("text", ["0-12:0", "4-2", "1-2,4-5,8,10-11,13,16-17,1-", "x", "0-99999999999"])
def test_expand_refuses_what_is_not_an_index_set(text: str) -> None:
    with pytest.raises(ValueError):
        expand(text)


def test_foreign_step_array_and_cut_off_line_leave_the_rest_readable() -> None:
    text = (
        "58_[0-12:2]|PENDING|JobHeldUser||\n"
        "59_[1-2,4-5,8,10-11,13,16-17,1|PENDING|JobHeldUser||someone-else\n"  # truncated: no closing ]
        f"60_[3-9:3%2]|PENDING|JobArrayTaskLimit||podline:{UID}\n"
        "61|RUNNING|None|vm|podline:aaa\n"
        "62+0|RUNNING|None|vm|hetjob\n"
    )
    snap = read_squeue(text)
    assert [snap.jobs[("", i)].job_id for i in (0, 12)] == ["58_0", "58_12"] and ("", 1) not in snap.jobs
    assert [snap.jobs[(f"podline:{UID}", i)].job_id for i in (3, 6, 9)] == ["60_3", "60_6", "60_9"]
    assert snap.jobs[("podline:aaa", None)].state == "RUNNING"
    assert snap.jobs[("hetjob", None)].job_id == "62+0"
    assert list(snap.unreadable) == ["someone-else"]
    assert len(parse_squeue(text)) == 7 + 3 + 1 + 1


def fake_squeue(monkeypatch: pytest.MonkeyPatch, answers: list[subprocess.CompletedProcess[str]]) -> list[list[str]]:
    """Replace squeue with canned answers; returns the argv and SLURM_BITSTR_LEN of each call."""
    calls: list[list[str]] = []

    def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        env = kwargs.get("env")
        assert isinstance(env, dict)
        calls.append([*argv, f"SLURM_BITSTR_LEN={env.get('SLURM_BITSTR_LEN')}"])
        return answers.pop(0)

    monkeypatch.setattr(squeue.subprocess, "run", run)
    return calls


def test_squeue_asks_for_one_line_per_task_and_whole_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_squeue(monkeypatch, [subprocess.CompletedProcess([], 0, "7_3|PENDING|Priority||podline:x\n", "")])
    job = SqueueWatcher().lookup("podline:x", 3)
    assert job is not None and job.job_id == "7_3"
    assert "-r" in calls[0] and "SLURM_BITSTR_LEN=0" in calls[0]


def age(watcher: SqueueWatcher) -> None:
    """As if MIN_INTERVAL had passed since the last query and snapshot."""
    watcher.taken_at -= squeue.MIN_INTERVAL
    watcher.tried_at -= squeue.MIN_INTERVAL


def test_failed_query_keeps_the_snapshot_age_and_retries_after_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_squeue(monkeypatch, [subprocess.CompletedProcess([], 0, "7|RUNNING|None|vm|podline:x\n", ""),
                              subprocess.CompletedProcess([], 1, "", "Socket timed out"),
                              subprocess.CompletedProcess([], 0, "7|COMPLETED|None|vm|podline:x\n", "")])
    watcher = SqueueWatcher()
    watcher.lookup("podline:x")
    age(watcher)
    taken = watcher.taken_at
    job = watcher.lookup("podline:x")  # the query fails: the old snapshot answers, known to be old
    assert job is not None and job.state == "RUNNING" and "Socket timed out" in watcher.error
    assert watcher.taken_at == taken and watcher.tried_at > taken
    assert watcher.lookup("podline:x") is job  # within the interval: no new query, failed or not
    age(watcher)
    job = watcher.lookup("podline:x")
    assert job is not None and job.state == "COMPLETED" and watcher.error == "" and watcher.taken_at > taken


def test_pending_task_on_an_unreadable_line_is_not_lost(tmp_path: Path) -> None:
    """A podline array whose line could not be read: its pending task is queued as far as podline knows, and no
    second array is submitted for it."""
    backend = SlurmBackend("hpc", Context(backend="slurm", shared_dir=str(tmp_path)), tmp_path)
    snap = read_squeue(f"42_[0-3:x]|PENDING|Priority||podline:{UID}\n")
    backend.watcher.jobs, backend.watcher.unreadable = snap.jobs, snap.unreadable
    backend.watcher.taken_at = time.monotonic() + 3600  # no real squeue during the test
    base = backend.run_dir("default", "arr", UID)
    base.mkdir(parents=True)
    write_json_atomic(base / "array.json", {"indexes": "0-3"})
    (base / "slurm-job-id").write_text("42\n")
    seen = backend.observe(base / "2")
    assert seen.state == "queued" and "squeue line not understood" in seen.detail
    assert backend.watcher.uncertain("podline:other") == ""


def test_submission_grace_ends_once_squeue_has_shown_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pending array task cancelled outside podline vanishes from squeue without a line: once the array has
    been seen, a missing task is gone, not "submitted a moment ago"."""
    fake_squeue(monkeypatch, [subprocess.CompletedProcess([], 0, "", ""),
                              subprocess.CompletedProcess([], 0, "9_0|RUNNING|None|vm|podline:arr\n", "")])
    watcher = SqueueWatcher()
    watcher.submitted("podline:arr")
    assert watcher.lookup("podline:arr", 2) is None and watcher.recently_submitted("podline:arr")  # not shown yet
    age(watcher)
    assert watcher.lookup("podline:arr", 2) is None and not watcher.recently_submitted("podline:arr")
