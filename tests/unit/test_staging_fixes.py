"""Stage-in fixes: a full dataset cache disk, sizeLimit pre-checks as the limit counts (blocks, symlinked
directories followed), and file:// URLs read as URLs (percent-decoded, localhost, other hosts refused)."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from podline.api.dataset import dataset_source
from podline.api.loader import load_text
from podline.runtime import dataset_cache, staging
from podline.runtime.staging import StagingError, stage_dataset
from podline.runtime.workspace import Workspace
from podline.store import Store
from tests.unit.inprocess_cli import empty_home, pipeline, refused
from tests.unit.test_staging import make_source, spec, tree, written


def cached_objects(cache: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (cache / "objects").glob("??/*")}


def indexed_objects(cache: Path) -> set[str]:
    with sqlite3.connect(cache / "index.db") as db:
        return {h for (h,) in db.execute("SELECT hash FROM objects")}


def workspace(tmp_path: Path, size_limit: int) -> Workspace:
    plan = {"pod": {"uid": "u1"}, "dirs": {"scratch": str(tmp_path / "scratch"), "shared": None},
            "workspace": {"medium": "Disk", "sizeLimit": size_limit},
            "checkpoint": {"nodeLocalEvery": 0, "sharedEvery": 0}}
    ws = Workspace(plan, 0, [].append, background_l2=False)
    ws.restore()
    return ws


# --- 1: a full cache disk -------------------------------------------------------------------------------
def no_space_in_the_cache(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    real = staging.copy_hashing

    def copy(source: Path, targets: list[tuple[Path, bool]], **kwargs: Any) -> str:
        if any(str(path).startswith(str(cache)) for path, _ in targets):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(source, targets, **kwargs)

    monkeypatch.setattr(staging, "copy_hashing", copy)


def test_a_full_cache_disk_stages_the_files_uncached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, cache = make_source(tmp_path), tmp_path / "cache"
    no_space_in_the_cache(monkeypatch, cache)
    objects: dict[str, tuple[str, Path]] = {}
    got = stage_dataset(spec(src), tmp_path / "ws", 0, 1, cache, objects)
    assert (got.filesCopied, got.bytesCopied, got.filesReused) == (6, 151, 0)
    assert tree(tmp_path / "ws") == tree(src)
    assert cached_objects(cache) == {} and objects == {}  # nothing cached, nothing to link L2 copies to
    assert not list((cache / "objects").glob(".tmp-*"))
    again = stage_dataset(spec(src), tmp_path / "ws2", 0, 1, cache)  # the next staging is not failed either
    assert tree(tmp_path / "ws2") == tree(src) and again.filesCopied == 6


def test_a_full_workspace_still_fails_the_staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_source(tmp_path)
    real = staging.copy_hashing

    def copy(source: Path, targets: list[tuple[Path, bool]], **kwargs: Any) -> str:
        if any("ws" in path.parts for path, _ in targets):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(source, targets, **kwargs)

    monkeypatch.setattr(staging, "copy_hashing", copy)
    with pytest.raises(OSError, match="No space left"):
        stage_dataset(spec(src), tmp_path / "ws", 0, 1, tmp_path / "cache")


def test_the_cache_is_collected_before_a_fetch_that_would_not_fit(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A pretend 1000-byte disk holding 600 bytes of an older dataset's objects: fetching 600 more would fill
    it, so the old ones go before the first byte is fetched (not after, when the disk was already full)."""
    cache = tmp_path / "cache"
    old, new = tmp_path / "old", tmp_path / "new"
    for name in ("a", "b"):
        written(old / name, name.encode() * 300)
        written(new / name, name.upper().encode() * 300)
    stage_dataset(spec(old), tmp_path / "ws-old", 0, 1, cache)
    old_objects = set(cached_objects(cache))
    assert len(old_objects) == 2
    monkeypatch.setattr(dataset_cache, "disk_usage", lambda root: (sum(cached_objects(root).values()), 1000))
    real, seen = staging.copy_hashing, []

    def copy(source: Path, targets: list[tuple[Path, bool]], **kwargs: Any) -> str:
        seen.append(set(cached_objects(cache)) & old_objects)
        return real(source, targets, **kwargs)

    monkeypatch.setattr(staging, "copy_hashing", copy)
    stage_dataset(spec(new), tmp_path / "ws-new", 0, 1, cache)
    assert seen == [set(), set()], "the old objects were still there when the fetch began"
    assert len(cached_objects(cache)) == 2 and indexed_objects(cache) == set(cached_objects(cache))


def test_what_a_failed_staging_fetched_is_indexed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its objects would otherwise sit unindexed, out of reach of the collection, for an hour. The file that
    vanishes is the one big file (fetched after the others)."""
    src, cache = make_source(tmp_path), tmp_path / "cache"
    real = staging.copy_hashing
    monkeypatch.setattr(staging, "BIG_FILE", 45)

    def copy(source: Path, targets: list[tuple[Path, bool]], **kwargs: Any) -> str:
        if source.name == "e.root":
            raise FileNotFoundError(errno.ENOENT, "gone", str(source))
        return real(source, targets, **kwargs)

    monkeypatch.setattr(staging, "copy_hashing", copy)
    with pytest.raises(StagingError, match="vanished"):
        stage_dataset(spec(src), tmp_path / "ws", 0, 1, cache)
    assert len(cached_objects(cache)) == 5
    assert set(cached_objects(cache)) <= indexed_objects(cache)


def test_an_index_that_cannot_be_written_leaves_no_objects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, cache = make_source(tmp_path), tmp_path / "cache"

    def full(*_: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(dataset_cache.Cache, "remember", full)
    objects: dict[str, tuple[str, Path]] = {}
    got = stage_dataset(spec(src), tmp_path / "ws", 0, 1, cache, objects)
    assert got.filesCopied == 6 and tree(tmp_path / "ws") == tree(src)
    assert cached_objects(cache) == {} and objects == {}


# --- 2, 3: sizeLimit pre-checks count what the limit counts ---------------------------------------------
def test_a_source_input_counts_its_symlinked_directories(tmp_path: Path) -> None:
    src, big = tmp_path / "src", tmp_path / "big"
    written(src / "a", b"a")
    written(big / "f", os.urandom(300_000))
    (src / "big").symlink_to(big)
    ws = workspace(tmp_path, 256 << 10)
    with pytest.raises(StagingError, match=r"src is \d+ bytes.* above the \d+ bytes the workspace's sizeLimit"):
        ws.stage_in([{"path": "in", "source": str(src)}], 1)
    assert not (ws.path / "in").exists()


def test_a_source_input_with_a_symlink_loop_fails_before_copying(tmp_path: Path) -> None:
    src = tmp_path / "src"
    written(src / "d" / "a", b"a")
    (src / "d" / "up").symlink_to(src)
    with pytest.raises(OSError, match="links to a directory above it"):
        workspace(tmp_path, 1 << 20).stage_in([{"path": "in", "source": str(src)}], 1)


@pytest.mark.parametrize("kind", ["dataset", "source"])
def test_small_files_are_counted_in_whole_blocks(tmp_path: Path, kind: str) -> None:
    """40 files of 8 bytes are 320 bytes but 40 blocks: a limit that holds the bytes and not the blocks fails
    the stage-in (not the first step, later); one that holds the blocks passes it and is not over after."""
    src = tmp_path / "src"
    for i in range(40):
        written(src / f"f{i:02}", b"%7d\n" % i)
    item = {"path": "in", "dataset": spec(src)} if kind == "dataset" else {"path": "in", "source": str(src)}
    ws = workspace(tmp_path / "small", 4096)
    block = os.statvfs(ws.path).f_frsize
    with pytest.raises(StagingError, match=rf"is {40 * block} bytes \(its files in whole {block}-byte blocks"):
        ws.stage_in([item], 1)
    roomy = workspace(tmp_path / "roomy", 40 * block)
    roomy.stage_in([item], 1)
    assert roomy.usage_over_limit() is None
    assert len(list((roomy.path / "in").iterdir())) == 40


# --- 4: file:// URLs ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "path"), [
    ("file:///data/my%20ds", "/data/my ds"), ("file://localhost/data/run1", "/data/run1"),
    ("file:///data/%C3%A9t%C3%A9", "/data/été"), ("file:///data/100%25", "/data/100%"),
    ("/data/my%20ds", "/data/my%20ds"),  # a plain path is a path: nothing to decode
])
def test_file_urls_are_percent_decoded(url: str, path: str) -> None:
    assert dataset_source(url) == path
    [doc] = load_text(pipeline(f"  inputs: [{{source: '{url}', path: in}}]\n"), "p.yaml")
    assert doc.obj.spec.inputs[0].source == path  # type: ignore[union-attr]


def test_a_percent_encoded_dataset_path_is_staged(tmp_path: Path) -> None:
    written(tmp_path / "my ds" / "q", b"q\n")
    source = dataset_source(f"file://{tmp_path}/my%20ds".replace(" ", "%20"))
    assert stage_dataset({"source": source}, tmp_path / "ws", 0, 1, tmp_path / "cache").filesCopied == 1


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    return empty_home(tmp_path, monkeypatch)


DATASET = "apiVersion: podline.io/v1alpha1\nkind: Dataset\nmetadata: {name: d}\nspec: {source: '%s'}\n"


@pytest.mark.parametrize(("url", "problem"), [
    ("file://fileserver/data", "file:// URL names the host 'fileserver': only a local path can be a source"),
    ("file:///data/a%0Ab", "must be a path without control characters or line breaks"),
    ("file:///data/%2E%2E/etc", "must be an absolute path (or file:// URL) without '..'"),
    ("file:///data/a#b", "percent-encode them (%3F, %23)"),
])
def test_a_bad_file_url_dataset_is_refused_at_apply(store: Store, url: str, problem: str) -> None:
    refused(store, DATASET % url, "Dataset/d", "spec.source", problem)


def test_a_file_url_input_on_another_host_is_refused_at_apply(store: Store) -> None:
    refused(store, pipeline("  inputs: [{source: 'file://nas/data', path: in}]\n"), "Pipeline/pl",
            "spec.inputs[0].source", "names the host 'nas'")
