"""A pipeline's outputs as published (links stay links, what a destination held stays; one the steps did not
make fails the shard for good), and shards that cannot be added once their inputs are sliced and a shard has
run (their slices would overlap)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import Cli, wait_for


def test_a_step_leaving_a_link_publishes_the_link_and_a_destination_keeps_its_files(cli: Cli,
                                                                                    tmp_path: Path) -> None:
    secret, results = tmp_path / "secret.txt", tmp_path / "results"
    secret.write_text("HOST SECRET\n")
    (results / "run41").mkdir(parents=True)
    (results / "run41" / "hist.json").write_text("earlier run\n")
    cli.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: links}}
spec:
  outputs: [{{path: out, destination: {results}}}, {{path: leak, destination: {tmp_path / "leaks"}}}]
  steps:
  - name: a
    image: busybox
    command: [sh, -c, 'mkdir -p out/run42 && echo new > out/run42/hist.json && ln -s "$0" out/also && ln -s "$0" leak',
              {secret}]
""")
    assert cli.wait("pipeline/links", "phase=Succeeded", timeout=60).returncode == 0
    assert (results / "run41" / "hist.json").read_text() == "earlier run\n"
    assert (results / "run42" / "hist.json").read_text() == "new\n"
    for link in (results / "also", tmp_path / "leaks" / "leak"):
        assert link.is_symlink() and os.readlink(link) == str(secret)


def test_an_output_the_steps_did_not_make_fails_the_shard_once_and_publishes_nothing(cli: Cli,
                                                                                      tmp_path: Path) -> None:
    """Finished steps never rerun, so a new attempt would miss the output again: no retry, no back-off."""
    cli.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: missing}}
spec:
  backoffLimit: 3
  outputs: [{{path: made, destination: {tmp_path / "made"}}}, {{path: never, destination: {tmp_path / "never"}}}]
  steps:
  - {{name: a, image: busybox, command: [sh, -c, 'echo x > made']}}
""")
    assert cli.wait("pipeline/missing", "phase=Failed", timeout=30).returncode == 0
    shard = cli.json("pipeline", "missing")["status"]["shards"][0]
    assert shard["reason"] == "OutputNotFound" and "'never'" in shard["message"] and shard["attempts"] == 1
    assert not (tmp_path / "made").exists(), "a shard's outputs appear together or not at all"


def test_shards_cannot_be_added_once_they_started_on_sliced_inputs_or_one_publishing_alone(cli: Cli,
                                                                                         tmp_path: Path) -> None:
    data, gate = tmp_path / "data", tmp_path / "gate"
    data.mkdir()
    for i in range(6):
        (data / f"f{i}.txt").write_text(str(i))
    cli.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Dataset
metadata: {{name: files}}
spec: {{source: {data}, include: ["*.txt"]}}
---
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: sliced}}
spec:
  shards: 2
  inputs: [{{dataset: files, path: in}}]
  steps:
  - name: a
    image: busybox
    command: [sh, -c, 'while [ ! -e {gate} ]; do sleep 0.05; done']
---
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: single}}
spec:
  outputs: [{{path: out, destination: {tmp_path / "single"}}}]
  steps:
  - name: a
    image: busybox
    command: [sh, -c, 'mkdir out; while [ ! -e {gate} ]; do sleep 0.05; done']
""")
    wait_for(lambda: _started(cli, "sliced") and _started(cli, "single"), timeout=30)
    refused = cli("scale", "pipeline/sliced", "--shards", "3", check=False)
    assert refused.returncode == 2 and "sliced 2 ways" in refused.stderr and "inputs[0]" in refused.stderr
    refused = cli("scale", "pipeline/single", "--shards", "3", check=False)  # its outputs: DEST, not DEST/0
    assert refused.returncode == 2 and "destination/<shard>" in refused.stderr
    gate.touch()
    assert cli.wait("pipeline/sliced", "phase=Succeeded", timeout=60).returncode == 0
    assert cli.json("pipeline", "sliced")["spec"]["shards"] == 2


def _started(cli: Cli, name: str) -> bool:
    return any(shard.get("attempts") for shard in cli.json("pipeline", name)["status"].get("shards", []))


def test_shards_can_be_added_to_whole_inputs_and_before_any_shard_started(cli: Cli, tmp_path: Path) -> None:
    data, gate = tmp_path / "data", tmp_path / "gate"
    data.mkdir()
    (data / "all.txt").write_text("all\n")
    cli.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: whole}}
spec:
  inputs: [{{source: {data}, path: in}}]
  steps:
  - name: a
    image: busybox
    command: [sh, -c, 'while [ ! -e {gate} ]; do sleep 0.05; done; cat in/all.txt']
---
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: waiting}}
spec:
  shards: 2
  inputs: [{{dataset: not-yet, path: in}}]
  steps: [{{name: a, image: busybox, command: ["true"]}}]
""")
    wait_for(lambda: _started(cli, "whole"), timeout=30)
    wait_for(lambda: len(cli.json("pipeline", "waiting")["status"].get("shards", [])) == 2, timeout=30)
    assert not _started(cli, "waiting")  # its Dataset does not exist: no shard has run
    cli("scale", "pipeline/whole", "--shards", "2")  # a `source` input is copied whole: nothing to overlap
    cli("scale", "pipeline/waiting", "--shards", "3")
    assert cli.json("pipeline", "waiting")["spec"]["shards"] == 3
    gate.touch()
    assert cli.wait("pipeline/whole", "phase=Succeeded", timeout=60).returncode == 0
    assert [s["phase"] for s in cli.json("pipeline", "whole")["status"]["shards"]] == ["Succeeded"] * 2
    assert cli("logs", "pipeline/whole", "-c", "a", "--shard", "1").stdout == "all\n"
