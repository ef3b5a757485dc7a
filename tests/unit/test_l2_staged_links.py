"""L2 copies of staged dataset files are hard links to the node cache's objects (no bytes written), and a
restore from them gives back the files as they were at the checkpoint, mode and mtime included."""

from __future__ import annotations

import os
import time
from pathlib import Path

from podline.runtime import checkpoint as ck
from podline.runtime.workspace import Workspace
from tests.unit.test_staging import written


def staged_workspace(tmp_path: Path) -> tuple[Workspace, Path]:
    src = tmp_path / "src"
    written(src / "big.dat", os.urandom(300_000))
    written(src / "run1" / "small.dat", b"s" * 1000)
    os.chmod(src / "big.dat", 0o640)
    plan = {"pod": {"uid": "u1"}, "dirs": {"scratch": str(tmp_path / "scratch"), "shared": ""},
            "workspace": {"medium": "Disk", "sizeLimit": None}, "checkpoint": {"nodeLocalEvery": 1, "sharedEvery": 0}}
    ws = Workspace(plan, 0, [].append, background_l2=False)
    ws.restore()
    dataset = {"source": str(src), "include": [], "exclude": [], "shardBy": "files"}
    staged = ws.stage_in([{"path": "in", "dataset": dataset}], 1)
    assert staged.filesCopied == 2
    return ws, src


def test_staged_files_are_linked_not_copied_until_a_step_changes_them(tmp_path: Path) -> None:
    ws, _ = staged_workspace(tmp_path)
    (ws.path / "out").write_bytes(b"o" * 500)
    ws.checkpoint(["one"], False)
    assert ws.saved["L2"]["bytesWritten"] == 500, "only the step's output was written"
    copy_dir, snap = ck.newest(ws.levels["L2"])
    for rel in ("in/big.dat", "in/run1/small.dat"):
        digest = snap.files[rel]["hash"]
        cached = ws.dataset_cache / "objects" / digest[:2] / digest
        assert os.stat(copy_dir / "data" / rel).st_ino == cached.stat().st_ino
    (ws.path / "in" / "big.dat").write_bytes(b"changed")  # a step rewrites a staged file: copied from then on
    ws.checkpoint(["one", "two"], False)
    assert ws.saved["L2"]["bytesWritten"] == len(b"changed")
    copy_dir, snap = ck.newest(ws.levels["L2"])
    assert (copy_dir / "data" / "in" / "big.dat").read_bytes() == b"changed"
    assert snap.steps == ["one", "two"]


def test_a_restore_from_linked_copies_gives_the_files_as_they_were(tmp_path: Path) -> None:
    ws, src = staged_workspace(tmp_path)
    ws.checkpoint(["one"], False)
    before = {p: (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns) for p in sorted(ws.path.rglob("*.dat"))}
    assert before[ws.path / "in" / "big.dat"][1] & 0o777 == 0o640
    (ws.path / "in" / "big.dat").write_bytes(b"damaged by a failing step")
    time.sleep(0.01)
    snap, level = ws.restore()
    assert level == "L2" and snap is not None
    after = {p: (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns) for p in sorted(ws.path.rglob("*.dat"))}
    assert after == before
    assert (ws.path / "in" / "big.dat").read_bytes() == (src / "big.dat").read_bytes()


def test_a_collected_cache_object_does_not_take_the_checkpoint_with_it(tmp_path: Path) -> None:
    ws, _ = staged_workspace(tmp_path)
    ws.checkpoint(["one"], False)
    for obj in (ws.dataset_cache / "objects").rglob("*"):
        if obj.is_file():
            obj.unlink()  # what the cache's garbage collection does
    (ws.path / "in" / "run1" / "small.dat").unlink()
    snap, level = ws.restore()
    assert level == "L2" and (ws.path / "in" / "run1" / "small.dat").read_bytes() == b"s" * 1000


def test_a_restore_puts_back_the_mode_of_a_file_whose_bytes_are_right(tmp_path: Path) -> None:
    ws, _ = staged_workspace(tmp_path)
    (ws.path / "out").write_bytes(b"o" * 10)
    os.chmod(ws.path / "out", 0o644)
    ws.checkpoint(["one"], False)
    os.chmod(ws.path / "out", 0o600)  # a failing step changed the mode only
    (ws.path / "junk").write_bytes(b"j")
    os.utime(ws.path / "in" / "big.dat", (1, 1))  # ... and a time: L1 no longer matches
    snap, level = ws.restore()
    assert level == "L2" and (ws.path / "out").stat().st_mode & 0o777 == 0o644
    assert (ws.path / "in" / "big.dat").stat().st_mtime_ns == snap.files["in/big.dat"]["mtime"]


def test_collecting_an_object_a_checkpoint_links_frees_nothing(tmp_path: Path) -> None:
    from podline.runtime.dataset_cache import Cache
    ws, _ = staged_workspace(tmp_path)
    ws.checkpoint(["one"], False)  # L2 links both staged files' objects
    cache = Cache(ws.dataset_cache)
    freed = cache.collect(time.time(), lambda root: (1000, 1000), high=50, low=0)
    cache.close()
    assert freed == 0 and not list((ws.dataset_cache / "objects").glob("??/*"))
    copy_dir, _ = ck.newest(ws.levels["L2"])
    assert len((copy_dir / "data" / "in" / "big.dat").read_bytes()) == 300_000
