"""What a pipeline step's record says while it waits for a retry or after another step's failure stopped it,
and how `logs` marks a step's attempts (helper-76's probe: a step in its back-off showed as Failed; a healthy
sibling stopped when another step failed showed as Failed with the other's StepFailed; attempts ran together
in the log).

The runner tests run one shard's runner directly on a plan (as in test_pipeline_fixes); the logs test goes
through the real CLI and controller."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import Cli, wait_for
from tests.integration.test_pipeline_fixes import Shard, sh, shards  # noqa: F401 (the fixture)


def test_a_step_waiting_for_its_retry_shows_its_back_off(tmp_path: Path, shards: list[Shard]) -> None:  # noqa: F811
    marker = tmp_path / "failed-once"
    flaky = sh("flaky", f"if [ -e {marker} ]; then echo ok > r; else touch {marker}; exit 3; fi")
    shards.append(Shard(tmp_path, {"restartPolicy": "OnFailure", "steps": [flaky]}, retries=2, backoff=3))
    wait_for(lambda: shards[0].steps().get("flaky", {}).get("reason") == "BackOff", timeout=20)
    waiting = shards[0].steps()["flaky"]
    assert waiting["phase"] == "Pending", waiting  # not Failed: it runs again in a moment
    assert waiting["message"] == "back-off 3s restarting failed step (exit code 3)", waiting
    assert shards[0].finish() == 0
    done = shards[0].steps()["flaky"]
    assert done["phase"] == "Succeeded" and done["attempts"] == 2, done
    assert "reason" not in done and "message" not in done, done


def test_a_sibling_stopped_by_another_steps_failure_says_so(tmp_path: Path, shards: list[Shard]) -> None:  # noqa: F811
    steps = [sh("long", "echo started > long; sleep 30"), sh("bad", "sleep 0.5; exit 3")]
    shards.append(Shard(tmp_path, {"restartPolicy": "Never", "steps": steps}))
    assert shards[0].finish() == 1
    status = shards[0].status()
    assert status["reason"] == "StepFailed" and status["message"] == "step bad failed: exit code 3", status
    steps_seen = shards[0].steps()
    assert steps_seen["bad"]["reason"] == "Error" and steps_seen["bad"]["exitCode"] == 3, steps_seen
    long = steps_seen["long"]
    assert long["phase"] == "Failed" and long["reason"] == "Stopped", long  # not the other step's StepFailed
    assert long["message"] == "stopped: step bad failed: exit code 3", long


def test_a_step_log_marks_where_each_attempt_begins(cli: Cli, tmp_path: Path) -> None:
    marker, out = tmp_path / "failed-once", tmp_path / "out"
    script = f"echo run; if [ -e {marker} ]; then echo second > r; else touch {marker}; echo first; exit 3; fi"
    cli.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: twice}}
spec:
  restartPolicy: OnFailure
  backoffLimit: 2
  outputs: [{{path: r, destination: {out}}}]
  steps:
  - {{name: flaky, image: busybox, command: [sh, -c, "{script}"]}}
""")
    assert cli.wait("pipeline/twice", "phase=Succeeded").returncode == 0
    logs = cli("logs", "pipeline/twice", "-c", "flaky")
    assert logs.stdout == "run\nfirst\nrun\n", logs  # stdout: the step's own output, every attempt
    assert logs.stderr == "--- step flaky: attempt 2 ---\n", logs
    tail = cli("logs", "pipeline/twice", "-c", "flaky", "--tail", "2")
    assert tail.stdout == "first\nrun\n" and tail.stderr == "--- step flaky: attempt 2 ---\n", tail
    last = cli("logs", "pipeline/twice", "-c", "flaky", "--tail", "1")
    assert last.stdout == "run\n" and last.stderr == "--- step flaky: attempt 2 ---\n", last


@pytest.mark.parametrize("runner_later", [0.0, 0.8], ids=["together", "runner-in-the-back-off"])
def test_a_stop_that_also_kills_the_running_step_costs_no_step_retry(tmp_path: Path, shards: list[Shard],  # noqa: F811
                                                                     runner_later: float) -> None:
    """scancel and a Slurm time limit SIGTERM the runner and the step together (helper-78): the step's end is
    the stop's, not a failure to retry; the controller counts the lost attempt once, so it must not count a
    step retry too (one walltime used two of backoffLimit). The runner's signal may come a moment after the
    step died: a retry granted meanwhile, still in its back-off, is given back."""
    pidfile = tmp_path / "step.pid"
    step = sh("long", f"echo $$$$ > {pidfile}; exec sleep 30")  # $$: one $, as Kubernetes expands
    shards.append(Shard(tmp_path, {"restartPolicy": "OnFailure", "steps": [step]}, retries=3, backoff=5))
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip().isdigit(), timeout=20)
    os.kill(int(pidfile.read_text()), signal.SIGTERM)  # the step first: the worst order for the runner
    time.sleep(runner_later)
    os.kill(shards[0].proc.pid, signal.SIGTERM)
    assert shards[0].finish() == 1
    status = shards[0].status()
    assert status["reason"] == "Terminated" and status["stepRetries"] == 0, status
    long = shards[0].steps()["long"]
    assert long["attempts"] == 1 and long["phase"] == "Failed", long


def test_a_lowered_backoff_limit_ends_a_retry_waiting_in_its_back_off(tmp_path: Path, shards: list[Shard]) -> None:  # noqa: F811
    """helper-78: after the failures, `apply` of a lower backoffLimit let the waiting retry run all the same once
    its back-off ended; the README says a new limit reaches a running shard within a second."""
    shards.append(Shard(tmp_path, {"restartPolicy": "OnFailure", "steps": [sh("bad", "exit 3")]}, retries=5,
                        backoff=30))
    wait_for(lambda: shards[0].steps().get("bad", {}).get("reason") == "BackOff", timeout=20)
    plan_file = shards[0].rundir / "plan.json"
    lowered = {**json.loads(plan_file.read_text()), "retries": {"0": 0}}
    (shards[0].rundir / "plan.new").write_text(json.dumps(lowered))
    os.replace(shards[0].rundir / "plan.new", plan_file)  # as the controller rewrites it
    began = time.monotonic()
    assert shards[0].finish(timeout=20) == 1 and time.monotonic() - began < 5  # not after the 30 s back-off
    status = shards[0].status()
    assert status["reason"] == "StepFailed" and "backoffLimit lowered while its retry waited" in status["message"]
    bad = shards[0].steps()["bad"]
    assert (bad["phase"], bad["reason"], bad["message"], bad["attempts"]) == ("Failed", "Error", "exit code 3", 1)


def test_two_steps_killed_with_the_stop_give_both_retries_back(tmp_path: Path, shards: list[Shard]) -> None:  # noqa: F811
    """helper-81: Slurm signals every step of the job; only the last step's retry was given back, so two
    parallel steps killed a moment before the runner's own signal still counted the interruption twice."""
    pids = [tmp_path / "one.pid", tmp_path / "two.pid"]
    steps = [sh(f"long{i}", f"echo $$$$ > {pid}; exec sleep 30") for i, pid in enumerate(pids)]
    shards.append(Shard(tmp_path, {"restartPolicy": "OnFailure", "steps": steps}, retries=3, backoff=5))
    wait_for(lambda: all(p.exists() and p.read_text().strip().isdigit() for p in pids), timeout=20)
    for pid in pids:
        os.kill(int(pid.read_text()), signal.SIGTERM)
    wait_for(lambda: shards[0].status().get("stepRetries") == 2, timeout=10)  # both granted, in their back-off
    os.kill(shards[0].proc.pid, signal.SIGTERM)
    assert shards[0].finish() == 1
    status = shards[0].status()
    assert status["stepRetries"] == 0 and status["reason"] == "Terminated", status
    for name in ("long0", "long1"):
        step = shards[0].steps()[name]
        assert (step["phase"], step["reason"], step["attempts"]) == ("Failed", "Terminated", 1), step
