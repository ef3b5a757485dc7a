"""Datasets on the real local backend: the source on the sshfs shared storage (a real network filesystem),
each shard's slice staged through the node-local cache, a second pipeline served from that cache, and a
pipeline that waits for its Dataset to exist.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import Cli, wait_for

SSHFS = Path("/mnt/podline-shared")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    if not os.path.ismount(SSHFS):
        pytest.skip(f"{SSHFS} is not mounted (run scripts/sshfs-up.sh as root)")
    root = SSHFS / "tests" / f"dataset-{tmp_path.name}-{uuid.uuid4().hex[:8]}"  # unique across concurrent runs
    files = {f"run{r}/ev{e:02}.root": f"run {r} event {e}\n" * (e + 1) for r in range(2) for e in range(5)}
    files["run0/skip.tmp"] = "not part of the dataset\n"
    hour_ago = time.time() - 3600  # files written a while ago: the node cache trusts them (not fresher ones)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
        os.utime(root / rel, (hour_ago, hour_ago))
    yield root
    shutil.rmtree(root, ignore_errors=True)


LIST = "mkdir -p out && cd in && find . -type f | sort > ../out/files && cat $(cat ../out/files) | md5sum > ../out/sum"


def manifests(name: str, source: Path, out: Path, shards: int, dataset: str = "events") -> str:
    return f"""
apiVersion: podline.io/v1alpha1
kind: Dataset
metadata: {{name: {dataset}}}
spec:
  source: file://{source}
  include: ["*.root"]
---
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: {name}}}
spec:
  shards: {shards}
  inputs: [{{dataset: {dataset}, path: in}}]
  outputs: [{{path: out, destination: {out}}}]
  steps:
  - name: list
    image: busybox
    command: [sh, -c, '{LIST}']
"""


def shard_files(out: Path, shard: int) -> list[str]:
    return (out / str(shard) / "files").read_text().split()


def test_three_shards_get_disjoint_slices_and_a_second_run_reads_the_node_cache(cli: Cli, tmp_path: Path,
                                                                                 source: Path) -> None:
    out = tmp_path / "out"
    cli.apply(manifests("first", source, out, 3))
    assert cli.wait("pipeline/first", "phase=Succeeded").returncode == 0
    slices = [shard_files(out, k) for k in range(3)]
    every = sorted(f"./run{r}/ev{e:02}.root" for r in range(2) for e in range(5))
    assert sorted(f for part in slices for f in part) == every, "together the shards hold the dataset, once"
    assert [len(part) for part in slices] == [4, 3, 3]
    status = cli.json("pipeline", "first")["status"]
    staged = [s["staging"] for s in status["shards"]]
    assert sum(s["filesCopied"] for s in staged) == 10 and sum(s["filesReused"] for s in staged) == 0
    assert status["staging"] == [{"index": k, **staged[k]} for k in range(3)]  # SPEC's status.staging per shard
    assert set(status["timings"]) >= {"queue", "image", "stageIn", "compute", "stageOut"}  # SPEC's names
    assert sum(s["bytesCopied"] for s in staged) == sum(p.stat().st_size for p in source.rglob("*.root"))

    again = tmp_path / "again"
    cli.apply(manifests("second", source, again, 3).split("---\n", 1)[1])  # the same Dataset, a new pipeline
    assert cli.wait("pipeline/second", "phase=Succeeded").returncode == 0
    staged = [s["staging"] for s in cli.json("pipeline", "second")["status"]["shards"]]
    assert sum(s["filesReused"] for s in staged) == 10 and sum(s["filesCopied"] for s in staged) == 0
    for k in range(3):  # the cache gave the very same bytes
        assert (again / str(k) / "sum").read_text() == (out / str(k) / "sum").read_text()
        assert shard_files(again, k) == slices[k]
    assert "Source:" in cli("describe", "dataset", "events").stdout
    assert "events" in cli("get", "datasets").stdout


def test_a_pipeline_waits_for_its_dataset(cli: Cli, tmp_path: Path, source: Path) -> None:
    out = tmp_path / "out"
    text = manifests("waiting", source, out, 1, dataset="later")
    dataset_doc, pipeline_doc = text.split("---\n", 1)
    cli.apply(pipeline_doc)
    wait_for(lambda: cli.json("pipeline", "waiting")["status"].get("shards", [{}])[0].get("reason")
             == "DatasetNotFound")
    assert 'dataset "later" not found' in cli("describe", "pipeline", "waiting").stdout
    assert not out.exists()
    cli.apply(dataset_doc)
    assert cli.wait("pipeline/waiting", "phase=Succeeded").returncode == 0
    assert len((out / "files").read_text().split()) == 10  # one shard: all of it, in the destination itself
