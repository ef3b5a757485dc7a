"""Pipeline runner behaviour at the edges: a step that fills the workspace faster than it is polled, a retry
after a step changed a file's mode, the status of a step that ended beside a running one, logs of a shard
that does not exist, and backoffLimit / activeDeadlineSeconds changed while a shard runs.

The runner tests run one shard's runner directly (`python -m podline.runtime.pod RUNDIR`, as the local
backend forks it) on a plan made by `plan_pipeline`: no controller, about a second each."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podline.plan.pipeline import plan_pipeline
from tests.conftest import Cli, wait_for


class Shard:
    """One shard's runner, started on a plan of `spec`; `status()` is what it last reported."""

    def __init__(self, tmp_path: Path, spec: dict[str, Any], retries: int = 0, backoff: float = 0.05) -> None:
        manifest = {"apiVersion": "podline.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": "p"}, "spec": spec}
        # A uid of its own: a runner kills what earlier attempts of its uid's shard left running on the node,
        # so two tests' runners (xdist workers side by side) with one uid killed each other's steps.
        plan = plan_pipeline(manifest, f"uid-{uuid.uuid4().hex}", lambda *a: None, generation=1,
                             dirs={"shared": str(tmp_path / "shared"), "scratch": str(tmp_path / "scratch")},
                             shard_dir=str(tmp_path / "shards" / "{shard}"), retries={"0": retries})
        self.rundir = tmp_path / "run"
        self.rundir.mkdir()
        (self.rundir / "plan.json").write_text(json.dumps({**plan, "shard": 0}))
        env = {**os.environ, "PODLINE_SHM_DIR": str(tmp_path / "shm"), "PODLINE_RESTART_BACKOFF_SECONDS": str(backoff),
               "SLURM_CPUS_PER_TASK": "4"}  # parallel branches run side by side on any machine
        self.proc = subprocess.Popen([sys.executable, "-m", "podline.runtime.pod", str(self.rundir)], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def status(self) -> dict[str, Any]:
        try:
            return json.loads((self.rundir / "status.json").read_text())["status"]
        except (OSError, ValueError):
            return {}

    def steps(self) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in self.status().get("steps", [])}

    def finish(self, timeout: float = 30) -> int:
        self.proc.wait(timeout)
        return self.proc.returncode


@pytest.fixture
def shards(tmp_path: Path) -> Iterator[list[Shard]]:
    started: list[Shard] = []
    yield started
    for shard in started:  # a failed assertion leaves no runner behind
        if shard.proc.poll() is None:
            shard.proc.kill()
            shard.proc.wait()


def sh(name: str, script: str, *depends: str) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], "dependsOn": list(depends)}


@pytest.mark.parametrize("after", [False, True], ids=["alone", "before-another-step"])
def test_a_step_filling_the_workspace_at_once_fails_itself(tmp_path: Path, shards: list[Shard], after: bool) -> None:
    """It ends within the 1 s poll: it is checked as it ends, fails with the reason, nothing is staged out,
    and the next step neither runs nor takes the blame."""
    steps = [sh("fill", "head -c 3000000 /dev/zero > big")] + ([sh("next", "echo n > n", "fill")] if after else [])
    out = tmp_path / "out"
    shards.append(Shard(tmp_path, {"workspace": {"medium": "Memory", "sizeLimit": "1Mi"}, "restartPolicy": "Never",
                                   "outputs": [{"path": "big", "destination": str(out)}], "steps": steps}))
    assert shards[0].finish() == 1
    status = shards[0].status()
    assert status["phase"] == "Failed" and status["reason"] == "WorkspaceLimitExceeded"
    assert "step fill" in status["message"] and "above its sizeLimit of 1Mi" in status["message"]  # as written
    # in Mi as written; how much the poll saw depends on when it caught the step (1.3Mi or the whole 2.9Mi)
    assert re.search(r"workspace uses \d+(\.\d)?Mi,", status["message"]), status["message"]
    steps_now = shards[0].steps()
    assert steps_now["fill"]["phase"] == "Failed" and steps_now["fill"]["reason"] == "WorkspaceLimitExceeded"
    if after:
        assert steps_now["next"]["phase"] == "Pending" and steps_now["next"]["attempts"] == 0
    assert not out.exists()


def test_a_step_over_the_limit_that_exits_0_when_stopped_still_fails(tmp_path: Path, shards: list[Shard]) -> None:
    """The poll finds the workspace full while the step runs; the step ends with 0 on SIGTERM (or just before
    it): it filled the space, so it fails with the reason and its output is not published."""
    steps = [sh("fill", "trap 'exit 0' TERM; head -c 3000000 /dev/zero > big; sleep 30 & wait")]
    out = tmp_path / "out"
    shards.append(Shard(tmp_path, {"workspace": {"medium": "Memory", "sizeLimit": "1Mi"}, "restartPolicy": "Never",
                                   "outputs": [{"path": "big", "destination": str(out)}], "steps": steps}))
    assert shards[0].finish() == 1
    assert shards[0].status()["reason"] == "WorkspaceLimitExceeded"
    fill = shards[0].steps()["fill"]
    assert fill["phase"] == "Failed" and fill["reason"] == "WorkspaceLimitExceeded" and fill["exitCode"] == 0
    assert not out.exists()


def test_a_retry_after_a_step_changed_a_mode_resumes_from_a_copy(tmp_path: Path, shards: list[Shard]) -> None:
    """`use` first makes tool.sh unexecutable and fails: the workspace (L1) is no checkpoint any more, the
    retry starts from L2, where tool.sh has its mode 0755 again."""
    marker = tmp_path / "failed-once"
    once = f"if [ ! -e {marker} ]; then touch {marker}; chmod 600 tool.sh; exit 1; fi"
    shards.append(Shard(tmp_path, {"restartPolicy": "OnFailure", "steps": [
        sh("make", "printf '#!/bin/sh\\necho ran\\n' > tool.sh && chmod 755 tool.sh"),
        sh("use", f"{once}; ./tool.sh > out", "make")]}, retries=2))
    assert shards[0].finish() == 0, shards[0].proc.stdout.read()  # type: ignore[union-attr]
    steps = shards[0].steps()
    assert steps["use"]["attempts"] == 2 and steps["use"]["restoredFrom"] == "L2"
    assert shards[0].status()["stepRetries"] == 1


def test_a_step_that_ended_beside_a_running_one_shows_at_once(tmp_path: Path, shards: list[Shard]) -> None:
    """`quick` ends while `slow` waits for a gate: the checkpoint waits for `slow`, the status does not."""
    gate = tmp_path / "gate"
    shards.append(Shard(tmp_path, {"restartPolicy": "Never", "steps": [
        sh("a", "echo a > a"), sh("quick", "echo q > q", "a"),
        sh("slow", f"until [ -e {gate} ]; do sleep 0.02; done; echo s > s", "a")]}))
    try:
        wait_for(lambda: shards[0].steps().get("slow", {}).get("phase") == "Running", timeout=15)
        steps = wait_for(lambda: (s := shards[0].steps())["quick"]["phase"] == "Succeeded" and s, timeout=5)
        assert steps["slow"]["phase"] == "Running" and "finishedAt" in steps["quick"]
    finally:
        gate.touch()
    assert shards[0].finish() == 0


# --- through the controller and the command line -------------------------------------------------------------
def pipeline(name: str, steps: str, extra: str = "") -> str:
    return f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: {name}}}
spec:
{extra}  steps:
{steps}"""


def updated(cli: Cli, name: str) -> bool:
    return "Updated" in cli("describe", "pipeline", name).stdout


def test_logs_of_a_shard_that_does_not_exist_is_an_error(cli: Cli) -> None:
    cli.apply(pipeline("two", "  - {name: say, image: busybox, command: [sh, -c, 'echo shard $PODLINE_SHARD']}\n",
                       "  shards: 2\n"))
    assert cli.wait("pipeline/two", "phase=Succeeded").returncode == 0
    assert cli("logs", "pipeline/two", "-c", "say", "--shard", "1").stdout == "shard 1\n"
    for shard in ("7", "2", "-1"):
        proc = cli("logs", "pipeline/two", "-c", "say", "--shard", shard, check=False)
        assert proc.returncode == 1 and f"has no shard {shard}" in proc.stderr and proc.stdout == ""


def test_step_logs_as_a_containers_follow_returns_with_the_step_tail_and_not_yet_run(cli: Cli, tmp_path: Path) -> None:
    """helper-76: `logs -f -c a` waited for the whole pipeline; a step that has not run printed nothing with exit 0;
    --tail was refused."""
    gate = tmp_path / "gate"
    cli.apply(pipeline("follow", "  - {name: a, image: busybox, command: [sh, -c, 'echo a1; echo a2; echo a3']}\n"
                       f"  - {{name: b, image: busybox, dependsOn: [a], command: [sh, -c, 'until [ -e {gate} ]; "
                       "do sleep 0.05; done']}\n"
                       "  - {name: c, image: busybox, dependsOn: [b], command: [sh, -c, 'echo c']}\n"))
    followed = cli("logs", "-f", "pipeline/follow", "-c", "a", timeout=30)  # returns while b still waits
    assert followed.stdout == "a1\na2\na3\n" and cli.json("pipeline", "follow")["status"]["phase"] == "Running"
    assert cli("logs", "pipeline/follow", "-c", "a", "--tail", "2").stdout == "a2\na3\n"
    early = cli("logs", "pipeline/follow", "-c", "c", check=False)
    assert early.returncode == 1 and 'step "c" of pipeline follow (shard 0) has not run' in early.stderr
    refused = cli("logs", "pipeline/follow", "-c", "a", "-p", check=False)
    assert refused.returncode == 2 and "holds all its attempts" in refused.stderr
    gate.touch()
    assert cli.wait("pipeline/follow", "phase=Succeeded").returncode == 0
    cli.apply(pipeline("never", "  - {name: a, image: busybox, command: [sh, -c, 'exit 3']}\n"
                       "  - {name: c, image: busybox, dependsOn: [a], command: [sh, -c, 'echo c']}\n",
                       "  backoffLimit: 0\n"))
    unrun = cli("logs", "-f", "pipeline/never", "-c", "c", check=False, timeout=30)  # returns once it cannot run
    assert unrun.returncode == 1 and 'step "c" of pipeline never (shard 0) has not run' in unrun.stderr  # helper-83
    cli.apply(pipeline("gone", "  - {name: s, image: busybox, command: [sh, -c, 'echo hello; sleep 60']}\n"))
    wait_for(lambda: cli("logs", "pipeline/gone", "-c", "s", check=False).stdout == "hello\n")
    follower = subprocess.Popen([sys.executable, "-m", "podline.cli", "logs", "-f", "pipeline/gone", "-c", "s"],
                                env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert follower.stdout is not None and follower.stdout.readline() == "hello\n"  # it follows: now delete
    cli("delete", "pipeline", "gone")
    out, err = follower.communicate(timeout=60)
    assert (follower.returncode, out) == (0, ""), err  # deleted while followed: it ran, no "has not run" (helper-84)


def test_a_lowered_backoff_limit_reaches_a_running_shard(cli: Cli, tmp_path: Path) -> None:
    """backoffLimit 6 → 1 while the step waits: one retry, then BackoffLimitExceeded (not seven attempts)."""
    gate = tmp_path / "gate"

    def spec(limit: int) -> str:
        return pipeline("flaky", f"  - {{name: s, image: busybox, command: [sh, -c, 'until [ -e {gate} ]; do sleep "
                        f"0.02; done; exit 1']}}\n", f"  restartPolicy: OnFailure\n  backoffLimit: {limit}\n")
    cli.apply(spec(6))
    wait_for(lambda: any(s["phase"] == "Running" for s in cli.json("pipeline", "flaky")["status"].get("steps", [])))
    cli.apply(spec(1))
    wait_for(lambda: updated(cli, "flaky"))
    gate.touch()
    assert cli.wait("pipeline/flaky", "phase=Failed").returncode == 0
    status = cli.json("pipeline", "flaky")["status"]
    assert status["shards"][0]["reason"] == "BackoffLimitExceeded"
    assert [s["attempts"] for s in status["steps"]] == [2]


def test_a_deadline_set_while_a_shard_runs_stops_it(cli: Cli, tmp_path: Path) -> None:
    """A 1 s activeDeadlineSeconds applied while the only step sleeps 60 s: counted from when the shard's steps
    began, it stops the shard within a second or two (the runner re-reads its plan every second). As a Job's
    deadline, it is final: backoffLimit left or not, no new attempt overruns it again."""
    started = tmp_path / "started"

    def spec(extra: str) -> str:
        return pipeline("late", f"  - {{name: s, image: busybox, command: [sh, -c, 'touch {started}; sleep 60']}}\n",
                        f"  backoffLimit: 2\n{extra}")
    cli.apply(spec(""))
    wait_for(lambda: started.exists())
    cli.apply(spec("  activeDeadlineSeconds: 1\n"))
    assert cli.wait("pipeline/late", "phase=Failed", timeout=20).returncode == 0
    shard = cli.json("pipeline", "late")["status"]["shards"][0]
    assert shard["reason"] == "DeadlineExceeded" and "activeDeadlineSeconds" in shard["message"]
    assert shard["attempts"] == 1
