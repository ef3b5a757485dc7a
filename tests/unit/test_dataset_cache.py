"""The dataset cache's garbage collection: least recently used objects go when the disk is too full."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from podline.runtime import dataset_cache
from podline.runtime.dataset_cache import Cache
from podline.runtime.staging import select, stage_dataset
from tests.unit.test_staging import written

TOTAL = 1000  # the pretend filesystem's size; the cache's objects are all that is on it


def objects_size(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "objects").rglob("*") if p.is_file())


def pretend_usage(root: Path) -> tuple[int, int]:
    return objects_size(root), TOTAL


def dataset(root: Path, name: str, sizes: dict[str, int]) -> dict[str, object]:
    for rel, size in sizes.items():
        written(root / name / rel, (name + rel).encode() * (size // len(name + rel) + 1))
    return {"source": str(root / name), "include": [], "exclude": [], "shardBy": "files"}


def stage(spec: dict[str, object], target: Path, cache: Path) -> dict[str, int]:
    return stage_dataset(spec, target, 0, 1, cache).to_json()


def test_least_recently_used_objects_go_until_the_disk_is_below_the_low_mark(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    old = dataset(tmp_path, "old", {"a": 200, "b": 200})
    mid = dataset(tmp_path, "mid", {"c": 200})
    new = dataset(tmp_path, "new", {"d": 200})
    for i, spec in enumerate((old, mid, new)):
        stage(spec, tmp_path / f"ws{i}", root)
        time.sleep(0.01)  # distinct last-use times
    stage(old, tmp_path / "again", root)  # `old` is now the most recently used
    assert objects_size(root) > 800
    cache = Cache(root)
    since = time.time()
    freed = cache.collect(since, pretend_usage, high=70, low=50)
    assert freed > 0 and objects_size(root) <= 500
    paths = {f.path: (f.size, f.stamp) for name in ("old", "mid", "new") for f in select(tmp_path / name, [], [])}
    known = cache.known(paths)
    assert set(known) == {str(tmp_path / "old" / "a"), str(tmp_path / "old" / "b")}, "mid and new went first"
    cache.close()
    assert stage(mid, tmp_path / "refetch", root)["filesCopied"] == 1  # gone from the index too: fetched again
    assert stage(old, tmp_path / "reused", root)["filesReused"] == 2


def test_nothing_goes_below_the_high_mark_and_what_a_staging_used_stays(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    spec = dataset(tmp_path, "d", {"a": 300, "b": 300})
    began = time.time()
    stage(spec, tmp_path / "ws", root)
    cache = Cache(root)
    assert cache.collect(began, pretend_usage, high=70, low=0) == 0  # 600 of 1000: below 70 %
    assert cache.collect(began, pretend_usage, high=10, low=0) == 0  # above, but just used
    assert cache.collect(time.time(), pretend_usage, high=10, low=0) >= 600
    cache.close()


def test_a_staging_collects_with_the_kubelet_like_thresholds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through stage_dataset and the real filesystem's usage: with the marks at 0 % every object a staging
    did not use goes."""
    root = tmp_path / "cache"
    first, second = dataset(tmp_path, "first", {"a": 100}), dataset(tmp_path, "second", {"b": 100})
    stage(first, tmp_path / "ws1", root)
    monkeypatch.setattr(dataset_cache, "GC_HIGH", 0.0)
    monkeypatch.setattr(dataset_cache, "GC_LOW", 0.0)
    stage(second, tmp_path / "ws2", root)
    assert stage(second, tmp_path / "ws3", root)["filesReused"] == 1
    assert stage(first, tmp_path / "ws4", root)["filesCopied"] == 1


def test_temporary_files_of_dead_fetches_go_after_an_hour(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    cache = Cache(root)
    stale, fresh = root / "objects" / ".tmp-1-2-3", root / "objects" / ".tmp-4-5-6"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    cache.collect(time.time(), pretend_usage, high=100, low=100)
    assert not stale.exists() and fresh.exists()
    cache.close()


def test_objects_no_staging_recorded_go_when_the_disk_is_full(tmp_path: Path) -> None:
    """A staging that died after fetching, before recording its objects, left them without a row."""
    root = tmp_path / "cache"
    cache = Cache(root)
    orphan, fresh = root / "objects" / "ab" / "ab12", root / "objects" / "cd" / "cd34"
    for path in (orphan, fresh):
        path.parent.mkdir()
        path.write_bytes(b"z" * 400)
    two_hours_ago = time.time() - 7200
    os.utime(orphan, (two_hours_ago, two_hours_ago))
    assert cache.collect(time.time(), pretend_usage, high=90, low=0) == 0 and orphan.exists()  # 80 %: below
    assert cache.collect(time.time(), pretend_usage, high=50, low=0) == 400
    assert not orphan.exists() and fresh.exists(), "one written in the last hour may be a live staging's"
    cache.close()
