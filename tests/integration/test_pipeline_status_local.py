"""What a Pipeline's status says while it runs, on the real local backend: a step retry inside the runner
shows in the shard's failures and as an event as it happens (it counts against backoffLimit), not only once
the shard fails."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli, wait_for
from tests.integration.test_pipelines_local import pipeline


def test_a_step_retry_counts_in_the_shards_failures_as_it_happens(cli: Cli, tmp_path: Path) -> None:
    marker, go = tmp_path / "failed-once", tmp_path / "go"
    once = f"if [ ! -e {marker} ]; then touch {marker}; exit 3; fi; mkdir -p result; echo ok > result/r"
    steps = f"""  - {{name: flaky, image: busybox, command: [sh, -c, '{once}']}}
  - {{name: wait, dependsOn: [flaky], image: busybox, command: [sh, -c, 'while [ ! -e {go} ]; do sleep 0.05; done']}}
"""
    cli.apply(pipeline("retry", tmp_path / "out", steps, extra="  backoffLimit: 2\n"))
    running = wait_for(lambda: next((s for s in cli.json("pipeline", "retry")["status"].get("steps", [])
                                     if s["name"] == "wait" and s["phase"] == "Running"), None), timeout=30)
    assert running
    shard = cli.json("pipeline", "retry")["status"]["shards"][0]
    assert shard["failures"] == 1 and shard["phase"] == "Running", shard
    events = cli("describe", "pipeline", "retry").stdout
    assert "StepRetry" in events and "1 of backoffLimit 2 used" in events, events
    assert "step flaky failed (Error: exit code 3) and is retried" in events, events  # which, and why (helper-76)
    go.touch()
    assert cli.wait("pipeline/retry", "phase=Succeeded").returncode == 0
    assert cli.json("pipeline", "retry")["status"]["shards"][0]["failures"] == 1  # the budget it used
    assert (tmp_path / "out" / "r").read_text() == "ok\n"


def test_a_pipeline_ends_with_an_indexed_jobs_final_condition(cli: Cli, tmp_path: Path) -> None:
    """SPEC's `wait --for=condition=Complete|Failed` reaches a Pipeline too: Complete when every shard succeeded,
    Failed (with the failed shard's reason) when one failed for good; the other one can no longer be reached."""
    cli.apply(pipeline("fine", tmp_path / "out", "  - {name: s, image: busybox, command: [sh, -c, 'mkdir result']}\n"))
    assert cli.wait("pipeline/fine", "condition=Complete").returncode == 0
    [complete] = cli.json("pipeline", "fine")["status"]["conditions"]
    assert (complete["type"], complete["status"], complete["reason"]) == ("Complete", "True", "CompletionsReached")
    cli.apply(pipeline("broken", tmp_path / "out2", "  - {name: s, image: busybox, command: [sh, -c, 'exit 3']}\n",
                       extra="  backoffLimit: 0\n"))
    assert cli.wait("pipeline/broken", "condition=Failed").returncode == 0
    [failed] = cli.json("pipeline", "broken")["status"]["conditions"]
    assert (failed["type"], failed["reason"]) == ("Failed", "BackoffLimitExceeded") and "shard 0" in failed["message"]
    late = cli.wait("pipeline/broken", "condition=Complete", timeout=5)
    assert late.returncode == 1 and "can no longer reach" in late.stderr, late.stderr
