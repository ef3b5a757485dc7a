"""Job rules that need no running controller: name lengths refused at load, which pods a scale-down deletes,
the final status of a finished Job once its stopped pods are gone, and how arrays are (re)throttled — the last
against a recording stand-in for the Slurm backend and a stand-in for `scontrol`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from podline.api.conditions import COMPLETIONS_REACHED, final_condition
from podline.api.errors import ManifestError
from podline.api.loader import load_text
from podline.backends.base import SubmitError
from podline.backends.slurm import SlurmBackend
from podline.controller import jobs
from podline.store import Obj, Store

INDEX = "batch.kubernetes.io/job-completion-index"


def job_yaml(meta: str) -> str:
    return ("apiVersion: batch/v1\nkind: Job\nmetadata:\n" + meta + "spec:\n  template:\n    spec:\n"
            "      restartPolicy: Never\n      containers: [{name: c, command: [x]}]\n")


@pytest.mark.parametrize(("meta", "path", "problem"), [
    ("  name: " + "a" * 64 + "\n", "metadata.name", "a Job name must be at most 63 characters"),
    ("  name: " + "a" * 250 + "\n", "metadata.name", "a Job name must be at most 63 characters"),
    ("  generateName: " + "g" * 59 + "\n", "metadata.generateName",
     "a Job generateName must be at most 58 characters (5 are added)"),
])
def test_job_names_that_cannot_be_a_label_are_refused(meta: str, path: str, problem: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_text(job_yaml(meta), "bad.yaml")
    text = str(caught.value)
    assert text.startswith("bad.yaml: document 1 (Job/") and f"): {path}: {problem}" in text, text
    assert "\n" not in text


@pytest.mark.parametrize("meta", ["  name: " + "a" * 63 + "\n", "  generateName: " + "g" * 58 + "\n",
                                  "  name: short\n  generateName: " + "g" * 70 + "\n"])
def test_job_names_up_to_the_limit_load(meta: str) -> None:
    assert load_text(job_yaml(meta), "ok.yaml")[0].obj.kind == "Job"


class Recorder:
    """What the job controller asks of the store and of the context (events, wake-ups)."""

    def __init__(self, store: Store, backend: Any = None) -> None:
        self.store = store
        self.backend = backend
        self.events: list[tuple[str, str]] = []
        self.now = 1000.0
        self.next_wake: float | None = None

    def event(self, obj: Obj, reason: str, message: str, type_: str = "Normal", once: bool = False) -> None:
        self.events.append((reason, message))

    def wake_at(self, when: float) -> None:
        self.next_wake = when

    def backend_for(self, obj: Obj) -> Any:
        """The backend given, else one without arrays (the local one, as far as the job controller cares)."""
        return self.backend if self.backend is not None else SimpleNamespace(supports_arrays=False)


def _job(store: Store, parallelism: int, **internal: Any) -> Obj:
    manifest = {"spec": {"parallelism": parallelism, "completions": 3, "completionMode": "Indexed",
                         "template": {"spec": {"containers": []}}}}
    _, job = store.apply("Job", "default", "j", manifest, internal=internal)
    return job


def _pod(store: Store, job: Obj, index: int, phase: str, **internal: Any) -> Obj:
    manifest = {"metadata": {"annotations": {INDEX: str(index)}}}
    _, pod = store.apply("Pod", "default", f"j-{index}-x", manifest, owner_uid=job.uid, internal=internal,
                         status={"phase": phase})
    return pod


def test_scale_down_deletes_pending_pods_then_the_highest_indexes(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store, parallelism=1)
    pods = [_pod(store, job, 0, "Running"), _pod(store, job, 1, "Pending"), _pod(store, job, 2, "Running"),
            _pod(store, job, 3, "Running")]
    ctx = Recorder(store)
    left = jobs._scale_down(ctx, job, pods)  # type: ignore[arg-type]
    assert [p.name for p in left] == ["j-0-x"]
    deleted = {p.name for p in store.list(kind="Pod") if p.deleted_at}
    assert deleted == {"j-1-x", "j-2-x", "j-3-x"}
    assert [r for r, _ in ctx.events] == ["SuccessfulDelete"] * 3
    assert jobs._scale_down(ctx, job, left) == left  # at parallelism: nothing more


def test_a_failed_job_is_failure_target_until_its_stopped_pods_are_gone_then_failed(tmp_path: Path) -> None:
    """As Kubernetes >= 1.31: FailureTarget at once, the stopped pods terminating (not active), and Failed (same
    reason and message) only once they are gone, counted as failed then, once."""
    store = Store(tmp_path / "s.db")
    job = _job(store, parallelism=2)
    pods = [_pod(store, job, 0, "Running"), _pod(store, job, 1, "Running")]
    job.status.update(active=2, ready=2, failed=1)
    ctx = Recorder(store)
    ctx.dirs_for = lambda obj: {"shared": str(tmp_path), "scratch": None}  # type: ignore[attr-defined]

    def kinds() -> list[str]:
        return [c["type"] for c in job.status["conditions"]]

    jobs._finish(ctx, job, "Failed", "DeadlineExceeded", "too long", pods)  # type: ignore[arg-type]
    assert job.internal["stopping"] == [p.uid for p in pods]
    assert kinds() == ["FailureTarget"] and final_condition(job.status) is None
    assert (job.status["active"], job.status["ready"], job.status["terminating"]) == (0, 0, 2)
    assert [r for r, _ in ctx.events] == []  # the job controller's event comes with the final condition
    store.remove(pods[0].uid)
    jobs._count_stopped(ctx, job, store.list(kind="Pod", owner_uid=job.uid))  # type: ignore[arg-type]
    assert (job.status["active"], job.status["terminating"], job.status["failed"]) == (0, 1, 1)
    assert kinds() == ["FailureTarget"] and "finishedAt" not in job.internal
    store.remove(pods[1].uid)
    ctx.now += 5
    jobs._count_stopped(ctx, job, [])  # type: ignore[arg-type]
    assert (job.status["active"], job.status["ready"], job.status["failed"], job.status["terminating"]) == (0, 0, 3, 0)
    assert kinds() == ["FailureTarget", "Failed"] and "stopping" not in job.internal
    assert [r for r, _ in ctx.events] == ["DeadlineExceeded"]
    target, failed = job.status["conditions"]
    assert (failed["reason"], failed["message"]) == (target["reason"], target["message"]) == ("DeadlineExceeded",
                                                                                              "too long")
    assert failed["lastTransitionTime"] > target["lastTransitionTime"] and job.internal["finishedAt"] == ctx.now
    assert "completionTime" not in job.status
    jobs._count_stopped(ctx, job, [])  # type: ignore[arg-type]
    assert job.status["failed"] == 3 and kinds() == ["FailureTarget", "Failed"]  # counted once, final once


def test_a_job_that_completes_with_no_pod_left_gets_both_conditions_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store, parallelism=1)
    ctx = Recorder(store)
    ctx.dirs_for = lambda obj: {"shared": str(tmp_path), "scratch": None}  # type: ignore[attr-defined]
    jobs._finish(ctx, job, "Complete", *COMPLETIONS_REACHED, [])  # type: ignore[arg-type]
    assert [(c["type"], c["reason"], c["message"]) for c in job.status["conditions"]] == [
        ("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
        ("Complete", "CompletionsReached", "Reached expected number of succeeded pods")]
    assert ctx.events[-1] == ("Completed", "Job completed") and "completionTime" in job.status


def test_a_decided_job_also_waits_for_a_pod_deleted_before_it_decided(tmp_path: Path) -> None:
    """helper-81: only the pods it stopped were waited for; one deleted by hand before, still ending, was not."""
    store = Store(tmp_path / "s.db")
    job = _job(store, parallelism=2)
    running, by_hand = _pod(store, job, 0, "Running"), _pod(store, job, 1, "Running")
    store.mark_deleted(by_hand.uid)
    ctx = Recorder(store)
    ctx.dirs_for = lambda obj: {"shared": str(tmp_path), "scratch": None}  # type: ignore[attr-defined]
    jobs._finish(ctx, job, "Failed", "BackoffLimitExceeded", "limit", [running])  # type: ignore[arg-type]
    store.remove(running.uid)
    jobs._count_stopped(ctx, job, store.list(kind="Pod", owner_uid=job.uid))  # type: ignore[arg-type]
    assert job.status["terminating"] == 1 and final_condition(job.status) is None
    store.remove(by_hand.uid)
    jobs._count_stopped(ctx, job, [])  # type: ignore[arg-type]
    assert job.status["terminating"] == 0 and final_condition(job.status)["type"] == "Failed"


class FakeArrays:
    supports_arrays = True

    def __init__(self, refuse: SubmitError | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.refuse = refuse

    def throttle_array(self, job_id: str, parallelism: int) -> None:
        self.calls.append((job_id, parallelism))
        if self.refuse is not None:
            raise self.refuse


def _arrays(**records: dict[str, Any]) -> dict[str, Any]:
    return {"arrays": {k: {"count": 3, "indexes": "0-2", "podsCreated": True, **v} for k, v in records.items()}}


def test_live_arrays_get_the_new_parallelism_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store, parallelism=2, **_arrays(a={"jobId": "11"}, done={"jobId": "12"}, new={"podsCreated": False},
                                               bad={"jobId": "13", "error": "refused"}),
               throttles={"a": 1, "done": 1, "gone": 1})
    pods = [_pod(store, job, 0, "Running", array="a"), _pod(store, job, 1, "Pending", array="a"),
            _pod(store, job, 2, "Pending", array="a"), _pod(store, job, 5, "Succeeded", array="done")]
    backend, ctx = FakeArrays(), Recorder(store)
    jobs._throttle_arrays(ctx, job, backend, pods)  # type: ignore[arg-type]
    assert backend.calls == [("11", 2)]  # not the finished, unsubmitted or refused arrays
    assert job.internal["throttles"] == {"a": 2, "new": 0}  # `a`'s three tasks take it all: `new` waits
    assert ctx.events == [("Scaled", "job array 11: at most 2 tasks at a time")]
    jobs._throttle_arrays(ctx, job, backend, pods)  # type: ignore[arg-type]
    assert backend.calls == [("11", 2)]
    job.manifest["spec"]["parallelism"] = 0
    jobs._throttle_arrays(ctx, job, backend, pods)  # type: ignore[arg-type]
    assert backend.calls[-1] == ("11", 0) and ctx.events[-1] == ("Scaled", "job array 11: pending tasks held")
    job.manifest["spec"]["parallelism"] = 50
    jobs._throttle_arrays(ctx, job, backend, pods)  # type: ignore[arg-type]
    assert backend.calls[-1] == ("11", 3)  # never above the array's task count
    assert job.internal["throttles"] == {"a": 3, "new": 3}  # `new` is submitted with %3


def test_arrays_share_the_parallelism_oldest_first(tmp_path: Path) -> None:
    """A retry array gets what the older arrays' unfinished tasks leave (helper-72: each array had the whole
    parallelism as its throttle, so a retry ran beside the first array's tasks, past parallelism 1)."""
    store = Store(tmp_path / "s.db")
    job = _job(store, parallelism=2, **_arrays(a={"jobId": "11"}, b={"jobId": "12", "indexes": "0", "count": 1}),
               throttles={"a": 2, "b": 2})
    pods = [_pod(store, job, 1, "Running", array="a"), _pod(store, job, 2, "Pending", array="a"),
            _pod(store, job, 0, "Pending", array="b")]
    backend = FakeArrays()
    jobs._throttle_arrays(Recorder(store), job, backend, pods)  # type: ignore[arg-type]
    assert backend.calls == [("12", 0)]  # `a` keeps 2 (in effect already), `b` waits
    pods[0].status = {"phase": "Succeeded"}
    jobs._throttle_arrays(Recorder(store), job, backend, pods)  # type: ignore[arg-type]
    assert backend.calls[1:] == [("12", 1)]  # `a` has one task left: `b` gets the other slot


def test_an_array_submitted_without_a_throttle_record_gets_one(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store, parallelism=1, **_arrays(a={"jobId": "11", "podsCreated": False}))
    backend = FakeArrays()
    jobs._throttle_arrays(Recorder(store), job, backend, [])  # type: ignore[arg-type]
    assert backend.calls == [("11", 1)]


@pytest.mark.parametrize(("refusal", "recorded", "reason"), [
    (SubmitError("scontrol update 11: Access/permission denied"), True, "FailedScale"),
    (SubmitError("Unable to contact slurm controller", transient=True), False, "ScaleRetry"),
])
def test_a_refused_throttle_is_an_event(tmp_path: Path, refusal: SubmitError, recorded: bool, reason: str) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store, parallelism=2, **_arrays(a={"jobId": "11"}), throttles={"a": 1})
    pods = [_pod(store, job, 0, "Running", array="a"), _pod(store, job, 1, "Pending", array="a")]
    ctx = Recorder(store)
    jobs._throttle_arrays(ctx, job, FakeArrays(refusal), pods)  # type: ignore[arg-type]
    assert ctx.events[-1][0] == reason and str(refusal) in ctx.events[-1][1]
    assert (job.internal["throttles"]["a"] == 2) is recorded
    assert (ctx.next_wake is not None) is not recorded


def _scontrol(monkeypatch: pytest.MonkeyPatch, answers: dict[str, tuple[int, str]]) -> list[list[str]]:
    calls: list[list[str]] = []

    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        code, err = answers.get(argv[1], (0, ""))
        return subprocess.CompletedProcess(argv, code, "", err)

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def _slurm() -> SlurmBackend:
    return SlurmBackend.__new__(SlurmBackend)  # throttling needs none of its connections


def test_scontrol_throttles_holds_and_releases(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _scontrol(monkeypatch, {})
    _slurm().throttle_array("7", 0)
    _slurm().throttle_array("7", 2)
    assert calls == [["scontrol", "hold", "7"], ["scontrol", "release", "7"],
                     ["scontrol", "update", "JobId=7", "ArrayTaskThrottle=2"]]


def test_finished_tasks_are_no_refusal_but_other_answers_are(monkeypatch: pytest.MonkeyPatch) -> None:
    _scontrol(monkeypatch, {"update": (1, "7_0: Job has already finished\n7_1-3: No error\n")})
    _slurm().throttle_array("7", 2)
    _scontrol(monkeypatch, {"update": (1, "Invalid job id specified for job 7\n")})
    _slurm().throttle_array("7", 2)  # Slurm forgot the array: nothing left to throttle
    _scontrol(monkeypatch, {"hold": (1, "7_0: Job has already finished\n7_1: Access/permission denied\n")})
    with pytest.raises(SubmitError) as caught:
        _slurm().throttle_array("7", 0)
    assert "scontrol hold 7: 7_1: Access/permission denied" in str(caught.value) and not caught.value.transient
    _scontrol(monkeypatch, {"release": (1, "Unable to contact slurm controller (connect failure)\n")})
    with pytest.raises(SubmitError) as caught:
        _slurm().throttle_array("7", 1)
    assert caught.value.transient


def test_an_array_without_a_share_is_not_submitted_yet(tmp_path: Path) -> None:
    from podline.controller import arrays

    store = Store(tmp_path / "s.db")
    job = _job(store, parallelism=1, **_arrays(new={"podsCreated": False}), throttles={"new": 0})
    arrays.submit_arrays(Recorder(store), job, FakeArrays())  # type: ignore[arg-type]  # it has no launch_array
    assert "jobId" not in job.internal["arrays"]["new"] and store.list(kind="Pod") == []


def test_an_array_jobs_active_count_leaves_out_held_tasks_but_never_running_ones(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    job = _job(store, parallelism=2)
    pods = [_pod(store, job, i, phase, array="a") for i, phase in enumerate(["Running", "Pending", "Pending"])]
    jobs._status(job, pods, pods)
    assert (job.status["active"], job.status["ready"]) == (2, 1)  # one task held back by the throttle
    running = [_pod(store, job, 10 + i, "Running", array="a") for i in range(4)]  # parallelism lowered under them
    jobs._status(job, running, running)
    assert (job.status["active"], job.status["ready"]) == (4, 4)
