"""A pipeline's stage-out as a whole: `delete` stops one that is running (nothing published, no copy aside
left), and a shard whose second output cannot be published publishes its first neither."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import Cli, wait_for


def _asides(dest: Path) -> list[Path]:
    return list(dest.parent.glob(f".{dest.name}.podline-tmp-*"))


def test_delete_stops_a_running_stage_out_and_leaves_nothing(cli: Cli, tmp_path: Path) -> None:
    dest = tmp_path / "published" / "res"
    cli.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: many}}
spec:
  checkpoint: {{nodeLocalEvery: 0}}  # no L2 copy of 40,000 files to make and remove: the stage-out is the subject
  outputs: [{{path: res, destination: {dest}}}]
  steps:
  - {{name: s1, image: busybox, command: [sh, -c, 'mkdir res && cd res && seq 1 40000 | split -l 1 -a 5 - f']}}
""")
    wait_for(lambda: _asides(dest), timeout=90, interval=0.02)  # the copy aside has begun
    cli("delete", "pipeline", "many")
    time.sleep(1)  # a runner that went on copying would rename its copy into place by now, or still hold it
    # A runner deaf to the stop either publishes (the copy ends within the grace period) or is SIGKILLed at its
    # end, leaving its copy aside: either fails one of these.
    assert not dest.exists(), "the deleted pipeline's output was published"
    assert not _asides(dest), "the copy aside was left behind"


def test_a_shard_whose_second_output_cannot_be_published_publishes_none(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be\n")
    cli.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: half}}
spec:
  backoffLimit: 0
  outputs: [{{path: a, destination: {tmp_path / "outA"}}}, {{path: b, destination: {blocker / "outB"}}}]
  steps:
  - {{name: s1, image: busybox, command: [sh, -c, 'mkdir a b && echo A > a/f && echo B > b/f']}}
""")
    assert cli.wait("pipeline/half", "phase=Failed", timeout=60).returncode == 0
    shard = cli.json("pipeline", "half")["status"]["shards"][0]
    assert "StageOutFailed" in (shard.get("reason", "") + shard.get("message", ""))
    assert not (tmp_path / "outA").exists(), "a failed shard published its first output"
    assert not _asides(tmp_path / "outA")
