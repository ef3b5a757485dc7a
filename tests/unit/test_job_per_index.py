"""`backoffLimitPerIndex` as Kubernetes has it (KEP-3850): the rules `apply` checks, each index's own failure
count, back-off and final failure, and the Job's verdict (FailedIndexes, MaxFailedIndexesExceeded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from podline.api.errors import ManifestError
from podline.api.loader import load_text
from podline.controller import job_counts, job_failures, jobs
from podline.store import Obj, Store
from tests.unit.test_job_rules import INDEX, Recorder


def job_yaml(spec: str, restart: str = "Never", rules: str = "") -> str:
    template = f"  template:\n    spec:\n      restartPolicy: {restart}\n      containers: [{{name: c, command: [x]}}]"
    template += "\n"
    return "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n" + spec + rules + template


INDEXED = "  completions: 4\n  completionMode: Indexed\n"


def test_a_job_with_a_limit_per_index_has_no_job_wide_limit_unless_given() -> None:
    spec = load_text(job_yaml(INDEXED + "  backoffLimitPerIndex: 1\n"), "j.yaml")[0].obj.spec  # type: ignore[attr-defined]
    assert (spec.backoff_limit_per_index, spec.backoff_limit) == (1, 2**31 - 1)
    spec = load_text(job_yaml(INDEXED + "  backoffLimitPerIndex: 1\n  backoffLimit: 3\n"), "j.yaml")[0].obj.spec  # type: ignore[attr-defined]
    assert spec.backoff_limit == 3
    assert load_text(job_yaml(INDEXED), "j.yaml")[0].obj.spec.backoff_limit == 6  # type: ignore[attr-defined]


@pytest.mark.parametrize(("yaml_text", "path", "problem"), [
    (job_yaml("  completions: 4\n  backoffLimitPerIndex: 1\n"), "spec.backoffLimitPerIndex",
     "requires completionMode Indexed"),
    (job_yaml(INDEXED + "  backoffLimitPerIndex: 1\n", restart="OnFailure"), "spec.template.spec.restartPolicy",
     "must be Never when backoffLimitPerIndex is set"),
    (job_yaml(INDEXED + "  maxFailedIndexes: 1\n"), "spec.maxFailedIndexes", "requires backoffLimitPerIndex"),
    (job_yaml(INDEXED + "  backoffLimitPerIndex: 1\n  maxFailedIndexes: 5\n"), "spec.maxFailedIndexes",
     "must be at most completions (4), got 5"),
    (job_yaml(INDEXED + "  backoffLimitPerIndex: -1\n"), "spec.backoffLimitPerIndex", "greater than or equal to 0"),
    (job_yaml(INDEXED, rules="  podFailurePolicy: {rules: [{action: FailIndex, onExitCodes: {operator: In, "
                               "values: [42]}}]}\n"),
     "spec.podFailurePolicy.rules[0].action", "FailIndex requires backoffLimitPerIndex"),
])
def test_per_index_limits_out_of_their_rules_are_refused(yaml_text: str, path: str, problem: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_text(yaml_text, "bad.yaml")
    text = str(caught.value)
    assert f"(Job/j): {path}: " in text and problem in text and "\n" not in text, text


def _job(store: Store, **spec: Any) -> Obj:
    manifest = {"spec": {"parallelism": 4, "completions": 4, "completionMode": "Indexed", "backoffLimitPerIndex": 1,
                         "template": {"spec": {"restartPolicy": "Never", "containers": []}}, **spec}}
    _, job = store.apply("Job", "default", "j", manifest)
    return job


def _failed(store: Store, job: Obj, index: int, code: int, name: str) -> None:
    status = {"phase": "Failed", "containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": code}}}]}
    store.apply("Pod", "default", name, {"metadata": {"annotations": {INDEX: str(index)}}}, owner_uid=job.uid,
                status=status)


def _tally(store: Store, job: Obj, ctx: Recorder) -> Obj:
    job_counts.tally(ctx, job, store.list(kind="Pod", owner_uid=job.uid))  # type: ignore[arg-type]
    stored = store.get_uid(job.uid)
    assert stored is not None
    return stored


def test_an_index_fails_past_its_own_limit_and_others_keep_theirs(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store)
    ctx = Recorder(store)
    _failed(store, job, 1, 1, "j-1-a")
    _failed(store, job, 2, 1, "j-2-a")
    job = _tally(store, job, ctx)
    assert job_failures.failed_indexes(job) == set()  # one failure each: within backoffLimitPerIndex 1
    assert job_failures.index_failures(job, 1) == job_failures.index_failures(job, 2) == (1, 0)
    assert job.internal["failed"] == 2
    ctx.now += 5
    _failed(store, job, 1, 1, "j-1-b")
    job = _tally(store, job, ctx)
    assert job_failures.failed_indexes(job) == {1} and job.internal["failedIndexes"] == "1"
    assert job.internal["indexFailures"] == {"1": [2, ctx.now, 0], "2": [1, 1000.0, 0]}
    _, pod = jobs.pod_manifest(job, 2)
    assert pod["metadata"]["annotations"][job_failures.FAILURE_COUNT_KEY] == "1"
    labels = pod["metadata"]["labels"]  # Kubernetes >= 1.27 sets both names of each (`-l` finds either)
    assert labels["job-name"] == labels["batch.kubernetes.io/job-name"] == job.name
    assert labels["controller-uid"] == labels["batch.kubernetes.io/controller-uid"] == job.uid
    assert labels["batch.kubernetes.io/job-completion-index"] == "2"
    assert job_failures.IGNORED_COUNT_KEY not in pod["metadata"]["annotations"]


def test_indexes_failing_in_one_pass_join_those_failed_before(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store, completions=8, parallelism=8, backoffLimitPerIndex=0)
    job.internal["failedIndexes"] = "1"
    ctx = Recorder(store)
    for index in (6, 2, 0, 7):
        _failed(store, job, index, 1, f"j-{index}-a")
    job = _tally(store, job, ctx)
    assert job.internal["failedIndexes"] == "0-2,6-7"


def test_fail_index_fails_at_once_and_ignore_counts_only_in_the_back_off(tmp_path: Path) -> None:
    rules = [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
             {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [42]}}]
    store = Store(tmp_path / "s.db")
    job = _job(store, backoffLimitPerIndex=5, podFailurePolicy={"rules": rules})
    ctx = Recorder(store)
    _failed(store, job, 0, 3, "j-0-a")
    _failed(store, job, 3, 42, "j-3-a")
    job = _tally(store, job, ctx)
    assert job_failures.failed_indexes(job) == {3}
    assert job_failures.index_failures(job, 0) == (0, 1) and job.internal["failed"] == 1
    _, pod = jobs.pod_manifest(job, 0)  # Kubernetes' pods carry both counts
    assert pod["metadata"]["annotations"][job_failures.IGNORED_COUNT_KEY] == "1"
    assert pod["metadata"]["annotations"][job_failures.FAILURE_COUNT_KEY] == "0"
    ready, next_ready = job_failures.past_back_off(job, [0, 1], ctx.now)  # an ignored failure waits, as in Kubernetes
    assert ready == [1] and next_ready == ctx.now + job_failures.retry_delay(1)


def test_each_index_waits_its_own_back_off(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store, backoffLimitPerIndex=9)
    job.internal["indexFailures"] = {"0": [2, 1000.0, 1], "2": [1, 1000.0, 0]}
    now = 1000.0 + job_failures.retry_delay(1)
    ready, next_ready = job_failures.past_back_off(job, [0, 1, 2, 3], now)
    assert ready == [1, 2, 3] and next_ready == 1000.0 + job_failures.retry_delay(3)
    assert job_failures.past_back_off(job, [1], now) == ([1], None)


@pytest.mark.parametrize(("failed", "completed", "max_failed", "verdict"), [
    ("1", "0", None, None),  # indexes 2, 3 still to run
    ("1", "0,2-3", None, "FailedIndexes"),
    ("", "0-3", None, None),  # complete: not this rule's to say
    ("1,3", "", 1, "MaxFailedIndexesExceeded"),
    ("1", "", 1, None),
])
def test_the_job_fails_when_all_indexes_are_done_or_too_many_failed(
        tmp_path: Path, failed: str, completed: str, max_failed: int | None, verdict: str | None) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store, **({} if max_failed is None else {"maxFailedIndexes": max_failed}))
    job.internal.update(failedIndexes=failed, completedIndexes=completed)
    found = job_failures.index_verdict(job)
    assert (found[0] if found else None) == verdict
