"""A Pipeline's status across attempts (controller.pipeline_status): phase timings add up over a shard's attempts,
a shard still queued lists its steps as Pending, and a shard's failures include the step retries of its running
attempt (they count against backoffLimit as they happen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from podline.controller.pipeline_status import merge_attempt, summarize, used_budget
from podline.runtime.files import rfc3339
from podline.store import Store
from tests.unit.test_job_rules import Recorder


def report(steps: list[dict[str, Any]], timings: dict[str, float], started: float, **more: Any) -> dict[str, Any]:
    return {"phase": "Running", "steps": steps, "timings": timings, "startTime": rfc3339(started), **more}


def test_a_resumed_shards_timings_add_to_its_earlier_attempts() -> None:
    rec: dict[str, Any] = {}
    first = [{"name": "a", "phase": "Succeeded", "attempts": 1}, {"name": "b", "phase": "Running", "attempts": 1}]
    merge_attempt(rec, report(first, {"stageIn": 2.0, "compute": 6.0}, started=102.0), launched_at=100.0)
    assert rec["timings"] == {"stageIn": 2.0, "compute": 6.0, "queue": 2.0}
    rec["timingsBase"] = dict(rec["timings"])  # a new attempt (controller.pipelines._new_attempt)
    second = [{"name": "a", "phase": "Succeeded", "attempts": 0, "restoredFrom": "L1"},
              {"name": "b", "phase": "Succeeded", "attempts": 1}]
    merge_attempt(rec, report(second, {"restore": 0.5, "compute": 3.0}, started=201.0), launched_at=200.0)
    assert rec["timings"] == {"stageIn": 2.0, "compute": 9.0, "restore": 0.5, "queue": 3.0}
    merge_attempt(rec, report(second, {"restore": 0.5, "compute": 3.5}, started=201.0), launched_at=200.0)
    assert rec["timings"]["compute"] == 9.5  # the same attempt reporting again replaces its own share


def test_a_queued_shard_lists_its_steps_as_pending(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    manifest = {"spec": {"shards": 2, "steps": [{"name": "a"}, {"name": "b"}]}}
    _, obj = store.apply("Pipeline", "default", "p", manifest, internal={"shards": {
        "0": {"phase": "Pending", "reason": "Queued"},
        "1": {"phase": "Running", "steps": {"a": {"name": "a", "phase": "Running", "attempts": 1}}}}})
    summarize(Recorder(store), obj)  # type: ignore[arg-type]
    assert [(s["shard"], s["name"], s["phase"], s["attempts"]) for s in obj.status["steps"]] == [
        (0, "a", "Pending", 0), (0, "b", "Pending", 0), (1, "a", "Running", 1)]


def test_step_retries_show_in_the_shards_failures_while_it_runs() -> None:
    rec: dict[str, Any] = {"failures": 1}
    merge_attempt(rec, report([], {}, started=1.0, stepRetries=2), launched_at=None)
    assert used_budget(rec) == 3


def test_a_step_waiting_for_its_image_on_a_later_attempt_says_so() -> None:
    """helper-84: a step not run in this attempt kept an earlier attempt's record, hiding ImagePullBackOff."""
    rec: dict[str, Any] = {}
    merge_attempt(rec, report([{"name": "a", "phase": "Failed", "attempts": 1, "reason": "Error"}], {}, 1.0), None)
    waiting = {"name": "a", "phase": "Pending", "attempts": 0, "reason": "ImagePullBackOff", "message": "registry"}
    merge_attempt(rec, report([waiting], {}, 2.0), None)
    assert (rec["steps"]["a"]["phase"], rec["steps"]["a"]["reason"]) == ("Pending", "ImagePullBackOff")
