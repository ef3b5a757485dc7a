"""Dataset staging: which files, which shard gets which, and the node-local content-addressed cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podline.runtime import staging
from podline.runtime.staging import SourceFile, matches, select, shard_slice, stage_dataset
from podline.runtime.workspace import Workspace

HOUR_AGO = time.time() - 3600


def written(path: Path, data: bytes, when: float = HOUR_AGO) -> None:
    """A dataset file as they usually are: written a while ago (fresher ones are fetched, not indexed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (when, when))


def make_source(root: Path) -> Path:
    src = root / "src"
    for rel, data in {"a.root": b"a" * 10, "b.root": b"b" * 20, "notes.txt": b"n",
                      "run1/c.root": b"c" * 30, "run1/tmp/d.root": b"d" * 40, "run2/e.root": b"e" * 50}.items():
        written(src / rel, data)
    return src


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def spec(src: Path, **extra: object) -> dict[str, object]:
    return {"source": str(src), "include": [], "exclude": [], "shardBy": "files", **extra}


def test_patterns_without_a_slash_match_names_anywhere_with_one_the_path(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    assert [f.rel for f in select(src, ["*.root"], [])] == ["a.root", "b.root", "run1/c.root", "run1/tmp/d.root",
                                                            "run2/e.root"]
    assert [f.rel for f in select(src, ["run1/*"], [])] == ["run1/c.root", "run1/tmp/d.root"]
    assert [f.rel for f in select(src, ["*.root"], ["*/tmp/*", "b.*"])] == ["a.root", "run1/c.root", "run2/e.root"]
    assert [f.rel for f in select(src, [], [])][-1] == "run2/e.root" and len(select(src, [], [])) == 6
    assert matches("x/y/z.root", ["*.root"]) and not matches("x/y/z.root", ["y/*.root"])


def test_a_source_file_is_a_dataset_of_one_filtered_like_any(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    [only] = select(src / "run2" / "e.root", ["*.root"], [])
    assert (only.rel, only.size) == ("e.root", 50)
    assert select(src / "run2" / "e.root", ["*.nothing"], []) == select(src / "a.root", [], ["a.*"]) == []


def test_symlinked_files_are_followed_and_symlinked_directories_not(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    (src / "link.root").symlink_to(src / "a.root")
    (src / "loop").symlink_to(src)
    rels = [f.rel for f in select(src, [], [])]
    assert "link.root" in rels and not any(r.startswith("loop/") for r in rels)


@settings(max_examples=60, deadline=None)
@given(count=st.integers(0, 40), shards=st.integers(1, 9))
def test_shard_slices_are_disjoint_complete_and_balanced(count: int, shards: int) -> None:
    files = [SourceFile(f"f{i:03}", f"/s/f{i:03}", i, 0) for i in range(count)]
    slices = [shard_slice(files, k, shards, "files") for k in range(shards)]
    assert sorted(f.rel for part in slices for f in part) == [f.rel for f in files]
    assert max(map(len, slices)) - min(map(len, slices)) <= 1
    assert shard_slice(files, shards - 1, shards, "none") == files


def test_second_stage_reuses_the_cache_and_matches_the_source(tmp_path: Path) -> None:
    src, cache = make_source(tmp_path), tmp_path / "cache"
    first = stage_dataset(spec(src), tmp_path / "ws1", 0, 1, cache)
    assert (first.filesCopied, first.bytesCopied, first.filesReused) == (6, 151, 0)
    second = stage_dataset(spec(src), tmp_path / "ws2", 0, 1, cache)
    assert (second.filesCopied, second.filesReused, second.bytesReused) == (0, 6, 151)
    assert tree(tmp_path / "ws1") == tree(tmp_path / "ws2") == tree(src)
    assert os.stat(tmp_path / "ws2" / "a.root").st_mtime_ns == os.stat(src / "a.root").st_mtime_ns


def test_identical_files_are_cached_once(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("x", "y", "z"):
        written(src / name, b"same bytes")
    stage_dataset(spec(src), tmp_path / "ws", 0, 1, tmp_path / "cache")
    objects = [p for p in (tmp_path / "cache" / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 1 and objects[0].read_bytes() == b"same bytes"


def test_a_changed_source_file_is_fetched_again(tmp_path: Path) -> None:
    src, cache = make_source(tmp_path), tmp_path / "cache"
    stage_dataset(spec(src), tmp_path / "ws1", 0, 1, cache)
    written(src / "b.root", b"B" * 21, HOUR_AGO + 60)
    again = stage_dataset(spec(src), tmp_path / "ws2", 0, 1, cache)
    assert (again.filesCopied, again.bytesCopied, again.filesReused) == (1, 21, 5)
    assert (tmp_path / "ws2" / "b.root").read_bytes() == b"B" * 21


def test_a_same_size_rewrite_that_puts_the_old_mtime_back_is_fetched_again(tmp_path: Path) -> None:
    """cp -p, rsync -t and tar x keep a file's mtime; its ctime moves all the same."""
    src, cache = make_source(tmp_path), tmp_path / "cache"
    stage_dataset(spec(src), tmp_path / "ws1", 0, 1, cache)
    time.sleep(0.01)  # a ctime later than the first one's, on any clock granularity worth the name
    written(src / "b.root", b"B" * 20)  # same size, same (hour-old) mtime
    again = stage_dataset(spec(src), tmp_path / "ws2", 0, 1, cache)
    assert (tmp_path / "ws2" / "b.root").read_bytes() == b"B" * 20
    assert (again.filesCopied, again.filesReused) == (1, 5)


def test_a_damaged_cache_object_is_dropped_and_fetched_again(tmp_path: Path) -> None:
    src, cache = make_source(tmp_path), tmp_path / "cache"
    stage_dataset(spec(src), tmp_path / "ws1", 0, 1, cache)
    damaged = 0
    for obj in (cache / "objects").rglob("*"):
        if obj.is_file() and obj.read_bytes() == b"c" * 30:
            os.chmod(obj, 0o600)
            obj.write_bytes(b"c" * 29 + b"X")  # same size: only the hash tells
            damaged += 1
    assert damaged == 1
    again = stage_dataset(spec(src), tmp_path / "ws2", 0, 1, cache)
    assert (again.filesCopied, again.filesReused) == (1, 5)
    assert tree(tmp_path / "ws2") == tree(src)


def test_shards_stage_their_own_slices_big_and_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "BIG_FILE", 25)  # files above 25 bytes take the one-at-a-time path
    src, cache = make_source(tmp_path), tmp_path / "cache"
    got = {}
    for shard in range(3):
        result = stage_dataset(spec(src, include=["*.root"]), tmp_path / f"ws{shard}", shard, 3, cache)
        got[shard] = tree(tmp_path / f"ws{shard}")
        assert result.filesCopied == len(got[shard])
    assert got == {0: {"a.root": b"a" * 10, "run1/tmp/d.root": b"d" * 40},
                   1: {"b.root": b"b" * 20, "run2/e.root": b"e" * 50},
                   2: {"run1/c.root": b"c" * 30}}


def test_a_file_changed_just_now_is_staged_but_not_trusted_by_the_index(tmp_path: Path) -> None:
    """Its mtime may not yet tell a same-size rewrite apart (sshfs mtimes are whole seconds)."""
    src, cache = make_source(tmp_path), tmp_path / "cache"
    written(src / "a.root", b"A" * 10, time.time())
    stage_dataset(spec(src), tmp_path / "ws1", 0, 1, cache)
    before = os.stat(src / "a.root")
    written(src / "a.root", b"Z" * 10, before.st_mtime)  # same size, same mtime: only the content changed
    again = stage_dataset(spec(src), tmp_path / "ws2", 0, 1, cache)
    assert (tmp_path / "ws2" / "a.root").read_bytes() == b"Z" * 10
    assert (again.filesCopied, again.filesReused) == (1, 5)


def test_an_empty_slice_still_gets_its_input_directory(tmp_path: Path) -> None:
    src = tmp_path / "src"
    written(src / "only", b"1")
    assert stage_dataset(spec(src), tmp_path / "ws", 1, 2, tmp_path / "cache").filesCopied == 0
    assert (tmp_path / "ws").is_dir()


def test_a_source_that_keeps_changing_fails_the_staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    written(src / "busy", b"x" * 100)
    real = staging.copy_hashing

    def and_append(source: Path, *args: object, **kwargs: object) -> str:
        digest = real(source, *args, **kwargs)
        with open(source, "ab") as handle:  # a writer appends after every read
            handle.write(b"more")
        return digest

    monkeypatch.setattr(staging, "copy_hashing", and_append)
    with pytest.raises(staging.StagingError, match="kept changing while it was staged"):
        stage_dataset(spec(src), tmp_path / "ws", 0, 1, tmp_path / "cache")


def test_inputs_above_the_workspace_size_limit_fail_before_anything_is_copied(tmp_path: Path) -> None:
    """make_source's six files hold 151 bytes; the workspace's sizeLimit is checked against the listing."""
    src, cache = make_source(tmp_path), tmp_path / "cache"
    with pytest.raises(staging.StagingError, match=r"is 151 bytes, above the 100 bytes the workspace's sizeLimit"):
        stage_dataset(spec(src), tmp_path / "ws", 0, 1, cache, room=100)
    assert tree(tmp_path / "ws") == {}
    assert stage_dataset(spec(src), tmp_path / "ws", 0, 1, cache, room=151).bytesCopied == 151

    # In the workspace the limit counts blocks (as `du`): the six files take six, run2's one file one more.
    block = os.statvfs(tmp_path).f_frsize
    plan = {"pod": {"uid": "u1"}, "dirs": {"scratch": str(tmp_path / "scratch"), "shared": None},
            "workspace": {"medium": "Disk", "sizeLimit": 7 * block - 1},
            "checkpoint": {"nodeLocalEvery": 0, "sharedEvery": 0}}
    ws = Workspace(plan, 0, [].append, background_l2=False)
    ws.restore()
    inputs = [{"path": "a", "dataset": spec(src)}, {"path": "b", "source": str(src / "run2")}]  # 6 + 1 blocks
    with pytest.raises(staging.StagingError, match=rf"run2 is {block} bytes .*, above the {block - 1} bytes"):
        ws.stage_in(inputs, 1)
    assert tree(ws.path / "b") == {}


def test_shards_slice_one_listing_even_when_the_source_changes_between_their_starts(tmp_path: Path) -> None:
    """Shard 0 stages, then a file appears (and one goes) before shards 1 and 2 start: sliced from one pinned
    listing, the three slices are still disjoint and cover what shard 0 saw; the removed file fails its shard
    (it cannot be staged) rather than silently shift the others' slices."""
    src = tmp_path / "src"
    for i in range(1, 8):
        written(src / f"f{i}.txt", f"file {i}\n".encode())
    listing = tmp_path / "shared" / "listing-0.json"
    got = {}

    def stage(shard: int) -> None:
        ws = tmp_path / f"ws{shard}"
        stage_dataset({"source": str(src)}, ws, shard, 3, tmp_path / "cache", listing=listing)
        got[shard] = sorted(p.name for p in ws.iterdir())

    stage(0)
    written(src / "f0.txt", b"new\n")  # sorts first: it would shift every slice of a fresh listing
    stage(1)
    stage(2)
    assert sorted(n for names in got.values() for n in names) == [f"f{i}.txt" for i in range(1, 8)]
    assert got == {0: ["f1.txt", "f4.txt", "f7.txt"], 1: ["f2.txt", "f5.txt"], 2: ["f3.txt", "f6.txt"]}
    (src / "f5.txt").unlink()
    with pytest.raises(staging.ListedFileGone, match="f5.txt"):  # a retry of shard 1 slices the same listing
        stage(1)
    fresh = stage_dataset({"source": str(src)}, tmp_path / "alone", 1, 3, tmp_path / "cache")
    assert fresh.filesCopied + fresh.filesReused == 2  # no listing: the changed source, sliced anew
