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
