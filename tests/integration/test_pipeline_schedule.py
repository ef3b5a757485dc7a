"""When a shard's steps start: a branch of short steps goes on while a long sibling runs when only L1 is due (it
waits for the next moment nothing runs); an L2 copy the policy asks for, or a step marked `checkpoint: major`,
holds new steps until that checkpoint can be taken.

The runner is driven directly on the host runtime (real processes, real workspace), no controller."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from podline.plan.pipeline import plan_pipeline
from podline.runtime.files import parse_rfc3339
from podline.runtime.pipeline import PipelineRunner


def run_shard(tmp_path: Path, steps: list[dict[str, Any]], l2_every: int = 0) -> dict[str, dict[str, Any]]:
    spec = {"steps": steps, "checkpoint": {"nodeLocalEvery": l2_every, "sharedEvery": 0},
            "workspace": {"medium": "Disk"}}
    manifest = {"apiVersion": "podline.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": "p"}, "spec": spec}
    plan = plan_pipeline(manifest, "uid-sched", lambda *a: None, generation=1,
                         dirs={"shared": str(tmp_path / "shared"), "scratch": str(tmp_path / "scratch")},
                         shard_dir=str(tmp_path / "shards" / "{shard}"), retries={"0": 0})
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    runner = PipelineRunner(plan, tmp_path / "run", 0, path)
    (tmp_path / "run").mkdir()
    assert runner.run() == 0
    return {s["name"]: s for s in runner.status["steps"]}


def step(name: str, seconds: float, after: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["sleep", str(seconds)], "dependsOn": after or [],
            "resources": {"requests": {"cpu": "100m"}}, **extra}


def at(s: dict[str, Any], key: str) -> float:
    return parse_rfc3339(s[key])


def test_a_short_branch_goes_on_while_a_long_sibling_runs(tmp_path: Path) -> None:
    got = run_shard(tmp_path, [step("slow", 2.0), step("f1", 0.2), step("f2", 0.2, ["f1"]),
                               step("f3", 0.2, ["f2"]), step("end", 0, ["slow", "f3"])])
    assert all(s["phase"] == "Succeeded" for s in got.values())
    assert at(got["f3"], "finishedAt") < at(got["slow"], "finishedAt"), "f2 and f3 waited for slow"
    assert at(got["end"], "startedAt") >= at(got["slow"], "finishedAt")


def test_an_l2_copy_after_every_step_holds_the_next_steps_for_it(tmp_path: Path) -> None:
    got = run_shard(tmp_path, [step("slow", 1.0), step("f1", 0.1), step("f2", 0.1, ["f1"])], l2_every=1)
    assert at(got["f2"], "startedAt") >= at(got["slow"], "finishedAt")


def test_a_major_step_holds_the_next_steps_for_its_checkpoint(tmp_path: Path) -> None:
    got = run_shard(tmp_path, [step("slow", 1.0), step("f1", 0.1, checkpoint="major"), step("f2", 0.1, ["f1"])])
    assert at(got["f2"], "startedAt") >= at(got["slow"], "finishedAt")
