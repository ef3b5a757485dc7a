"""Parsing the one batched squeue snapshot: plain jobs, array tasks, pending array ranges."""

from __future__ import annotations

from podline.backends.squeue import SlurmJob, parse_squeue
from podline.plan.ranges import expand

SNAPSHOT = """\
101|RUNNING|None|vm|podline:aaa
102_3|COMPLETED|None|vm|podline:bbb
102_[4-6,9%2]|PENDING|JobArrayTaskLimit||podline:bbb
103|PENDING|Resources||other|comment|with|bars
garbage line
104|TIMEOUT|TimeLimit|vm|podline:ccc
"""


def test_expand() -> None:
    assert expand("0-3,7,9-10%4") == [0, 1, 2, 3, 7, 9, 10]
    assert expand("5") == [5]


def test_parse_squeue_indexes_by_tag_and_array_task() -> None:
    jobs = parse_squeue(SNAPSHOT)
    assert jobs[("podline:aaa", None)].state == "RUNNING"
    assert jobs[("podline:bbb", 3)].state == "COMPLETED"
    for index in (4, 5, 6, 9):
        job = jobs[("podline:bbb", index)]
        assert job.state == "PENDING" and job.reason == "JobArrayTaskLimit" and job.job_id == f"102_{index}"
    assert ("podline:bbb", 7) not in jobs
    assert jobs[("other|comment|with|bars", None)].job_id == "103"  # the comment is the last, free field
    assert jobs[("podline:ccc", None)].state == "TIMEOUT"
    assert len(jobs) == 8


def test_a_jobs_outcome_names_slurms_reason_only_when_it_gives_one() -> None:
    assert SlurmJob("7_1", "CANCELLED", "None", "vm", "c").outcome == "CANCELLED"  # squeue's "no reason"
    assert SlurmJob("7", "TIMEOUT", "TimeLimit", "vm", "c").outcome == "TIMEOUT (TimeLimit)"
