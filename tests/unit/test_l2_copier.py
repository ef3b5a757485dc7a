"""Background L2 copies: a copy is the checkpoint's state or nothing, newer checkpoints replace waiting ones,
and a stopped copy leaves no trace.

The copier's thread is held at the start of a copy by a gate around `save_copy` (timing injection: a real
copy of a small workspace finishes before the test could change anything), so what happens meanwhile is
deterministic.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from podline.runtime import checkpoint as ck
from podline.runtime import copier as copier_module
from podline.runtime.copier import BackgroundCopier
from podline.runtime.workspace import Workspace


class Gate:
    """Holds each background copy at its start until released; records what reached it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.seen: list[int] = []
        real = ck.save_copy

        def gated(workspace: Path, level_root: Path, snap: ck.Snapshot, *args: Any) -> int:
            self.seen.append(snap.seq)
            self.started.set()
            assert self.release.wait(10), "the test never released the copy"
            return real(workspace, level_root, snap, *args)

        monkeypatch.setattr(copier_module.ck, "save_copy", gated)


def workspace(tmp_path: Path, logs: list[str]) -> Workspace:
    plan = {"pod": {"uid": "u1"}, "dirs": {"scratch": str(tmp_path / "scratch"), "shared": ""},
            "workspace": {"medium": "Disk", "sizeLimit": None}, "checkpoint": {"nodeLocalEvery": 1, "sharedEvery": 0}}
    ws = Workspace(plan, 0, logs.append)
    ws.restore()
    return ws


def test_a_copy_is_made_in_the_background_and_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate, logs = Gate(monkeypatch), []
    ws = workspace(tmp_path, logs)
    (ws.path / "data").write_bytes(b"x" * 100_000)
    ws.checkpoint(["one"], False)  # returns while the copy is held: the next step could start now
    assert gate.started.wait(10) and "L2" not in ws.saved and ck.newest(ws.levels["L2"]) is None
    gate.release.set()
    assert ws.settle_copies(10)
    assert ws.saved["L2"]["seq"] == 1 and ws.saved["L2"]["bytesWritten"] == 100_000
    copy_dir, snap = ck.newest(ws.levels["L2"])
    assert (copy_dir / "data" / "data").read_bytes() == b"x" * 100_000 and snap.steps == ["one"]


def test_a_file_changed_during_the_copy_drops_it_and_keeps_the_previous(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    logs: list[str] = []
    ws = workspace(tmp_path, logs)
    data = ws.path / "data"
    data.write_bytes(b"a" * 4096)
    ws.checkpoint(["one"], False)
    assert ws.settle_copies(10) and ws.saved["L2"]["seq"] == 1
    gate = Gate(monkeypatch)
    data.write_bytes(b"b" * 4096)
    ws.checkpoint(["one", "two"], False)
    assert gate.started.wait(10)
    # The next step rewrites the file in place: same size, and the mtime put back (a write within the same
    # clock tick keeps it), so only the content tells.
    before = os.stat(data)
    with open(data, "r+b") as handle:
        handle.write(b"c" * 4096)
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    gate.release.set()
    assert ws.settle_copies(10)
    copy_dir, snap = ck.newest(ws.levels["L2"])
    assert snap.seq == 1 and (copy_dir / "data" / "data").read_bytes() == b"a" * 4096
    assert ws.saved["L2"]["seq"] == 1
    assert any("seq 2 dropped" in line and "changed while it was being copied" in line for line in logs)
    assert [p.name for p in ws.levels["L2"].iterdir()] == ["1"], "the torn copy left nothing behind"
    # Steps here change files in place: from now on L2 is copied before the next step starts.
    data.write_bytes(b"d" * 4096)
    ws.checkpoint(["one", "two", "three"], False)
    assert ws.copier.idle(), "no background copy any more"
    copy_dir, snap = ck.newest(ws.levels["L2"])  # already there when checkpoint() returns
    assert snap.seq == 3 and (copy_dir / "data" / "data").read_bytes() == b"d" * 4096
    assert ws.saved["L2"]["seq"] == 3 and ws.saved["L2"]["background"] is False


def test_a_newer_checkpoint_replaces_a_waiting_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate, logs = Gate(monkeypatch), []
    ws = workspace(tmp_path, logs)
    for seq, step in enumerate(["one", "two", "three"], start=1):
        (ws.path / step).write_text(step)
        ws.checkpoint(["one", "two", "three"][:seq], False)
        assert gate.started.wait(10)  # seq 1 is being copied; 2 waits, then 3 takes its place
    gate.release.set()
    assert ws.settle_copies(10)
    assert gate.seen == [1, 3] and any("seq 2 skipped: seq 3 is newer" in line for line in logs)
    copy_dir, snap = ck.newest(ws.levels["L2"])
    assert snap.seq == 3 and sorted(p.name for p in (copy_dir / "data").iterdir()) == ["one", "three", "two"]


def test_stop_abandons_the_copy_in_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs: list[str] = []
    ws = workspace(tmp_path, logs)
    (ws.path / "big").write_bytes(os.urandom(3 * ck.CHUNK))
    real = ck._copy_hashing
    in_copy = threading.Event()

    def slow(src: Path, dst: Path, sync: bool, stop: threading.Event | None = None, buffer: Any = None,
             limit: int | None = None) -> str:
        in_copy.set()
        assert stop is not None and stop.wait(10)  # held until stop() is called
        return real(src, dst, sync, stop, buffer, limit)

    monkeypatch.setattr(ck, "_copy_hashing", slow)
    ws.checkpoint(["one"], False)
    assert in_copy.wait(10)
    ws.copier.stop()
    assert ck.newest(ws.levels["L2"]) is None and list(ws.levels["L2"].iterdir()) == []
    assert "L2" not in ws.saved and not logs


def test_restore_waits_for_the_newest_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs: list[str] = []
    ws = workspace(tmp_path, logs)
    (ws.path / "old").write_text("kept\n")
    ws.checkpoint(["one"], False)
    assert ws.settle_copies(10)
    gate = Gate(monkeypatch)
    (ws.path / "new").write_text("two's output\n")
    ws.checkpoint(["one", "two"], False)
    assert gate.started.wait(10)
    # A failed third step appended to `old` (linked from copy 1, not read again): L1 no longer matches.
    with open(ws.path / "old", "a") as handle:
        handle.write("a failed step's leftovers\n")
    threading.Timer(0.2, gate.release.set).start()
    snap, level = ws.restore()
    assert level == "L2" and snap is not None and snap.seq == 2 and snap.steps == ["one", "two"]
    assert (ws.path / "old").read_text() == "kept\n" and (ws.path / "new").read_text() == "two's output\n"
    assert ws.waited > 0 and not [line for line in logs if "dropped" in line or "failed" in line]


def test_a_file_rewritten_within_a_clock_tick_is_hashed_again(tmp_path: Path) -> None:
    ws = workspace(tmp_path, [])
    data = ws.path / "data"
    data.write_bytes(b"a" * 10)
    first = ws._hash_files(ck.take_l1(ws.path, 1, []))
    before = os.stat(data)
    data.write_bytes(b"b" * 10)  # same size, same inode; the mtime put back as a same-tick write leaves it
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    second = ws._hash_files(ck.take_l1(ws.path, 2, []))
    assert first["data"] != second["data"] == ck.hash_file(data)


def test_copier_without_work_is_idle(tmp_path: Path) -> None:
    copier = BackgroundCopier(tmp_path, tmp_path / "L2", print, lambda *_: None)
    assert copier.idle() and copier.drain(0)
    copier.stop()  # no thread was ever started


@pytest.mark.parametrize("size", [100, 3 << 20])  # one read, and the chunked path
def test_a_file_appended_to_during_the_copy_still_gives_the_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """`>>` is the usual in-place change: the copy takes the bytes the file had at the checkpoint."""
    gate, logs = Gate(monkeypatch), []
    ws = workspace(tmp_path, logs)
    content = os.urandom(size)
    (ws.path / "log").write_bytes(content)
    ws.checkpoint(["one"], False)
    assert gate.started.wait(10)
    with open(ws.path / "log", "ab") as handle:  # the next step appends before the copy has read the file
        handle.write(b"the next step's line\n")
    gate.release.set()
    assert ws.settle_copies(10) and not logs, logs
    copy_dir, snap = ck.newest(ws.levels["L2"])
    assert snap.seq == 1 and (copy_dir / "data" / "log").read_bytes() == content




def copying_forever(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: list[str], grace: int) -> Workspace:
    """A workspace whose background L2 copy is in progress and ends only when the copier is stopped."""
    plan = {"pod": {"uid": "u1"}, "dirs": {"scratch": str(tmp_path / "scratch"), "shared": ""},
            "workspace": {"medium": "Disk", "sizeLimit": None}, "checkpoint": {"nodeLocalEvery": 1, "sharedEvery": 0},
            "terminationGracePeriodSeconds": grace}
    ws = Workspace(plan, 0, logs.append)
    ws.restore()
    (ws.path / "data").write_bytes(b"x" * 1000)
    real, in_copy = ck._copy_hashing, threading.Event()

    def endless(src: Path, dst: Path, sync: bool, stop: threading.Event | None = None, buffer: Any = None,
                limit: int | None = None) -> str:
        in_copy.set()
        assert stop is not None and stop.wait(30)
        return real(src, dst, sync, stop, buffer, limit)

    monkeypatch.setattr(ck, "_copy_hashing", endless)
    ws.checkpoint(["one"], False)
    assert in_copy.wait(10)
    return ws


def test_a_wait_for_a_copy_ends_at_the_grace_period_once_told_to_stop(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A successful shard waits for its last copy without a timeout; SIGTERM meanwhile (the runner's
    `stop_requested`) bounds that wait by the grace period (1 s here), and the copy is abandoned, leaving nothing."""
    logs: list[str] = []
    ws = copying_forever(tmp_path, monkeypatch, logs, grace=1)
    settled: list[bool] = []
    waiter = threading.Thread(target=lambda: settled.append(ws.settle_copies()))
    waiter.start()
    waiter.join(1.5)
    assert waiter.is_alive(), "not told to stop: it waits for the copy, past the grace period"
    ws.stop_requested()  # what the runner's request_stop (SIGTERM) calls
    waiter.join(5)
    assert not waiter.is_alive() and settled == [False]
    assert ck.newest(ws.levels["L2"]) is None, "the abandoned copy left nothing"
    assert any("abandoned" in line for line in logs)


def test_a_same_size_rewrite_within_the_clock_tick_is_not_trusted(tmp_path: Path) -> None:
    """A file stamped with the current tick of the coarse clock file times come from (a kernel without
    multigrain timestamps, this machine's has them: the stamps are set by hand) is moved 1 ns back by the
    checkpoint, so the next step's same-size rewrite within that tick, stamped with the same tick, differs."""
    coarse = 5  # CLOCK_REALTIME_COARSE
    ws = workspace(tmp_path, [])
    data, other = ws.path / "data", ws.path / "other"
    data.write_bytes(b"a" * 100)
    other.write_bytes(b"o")
    old = time.time_ns() - 10**9
    os.utime(other, ns=(old, old))
    for _ in range(1000):  # until the checkpoint fits in one tick (a few ms)
        tick = time.clock_gettime_ns(coarse)
        os.utime(data, ns=(tick, tick))
        ws.checkpoint(["one"], False)
        if time.clock_gettime_ns(coarse) == tick:
            break
    else:
        pytest.fail("no checkpoint within one clock tick in 1000 tries")
    assert data.stat().st_mtime_ns == tick - 1 and other.stat().st_mtime_ns == old
    data.write_bytes(b"b" * 100)  # the next step's rewrite, stamped as a coarse kernel would
    os.utime(data, ns=(tick, tick))
    l1 = ck.read_l1(ws.l1_path)
    assert l1 is not None and not ck.l1_matches(ws.path, l1)


def test_the_grace_period_counts_from_the_stop_request_not_from_the_wait(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopping the steps already took most of the grace period (2 s here): the wait for the copy gets the rest."""
    ws = copying_forever(tmp_path, monkeypatch, [], grace=2)
    ws.stop_requested()
    time.sleep(1.5)  # the steps' termination
    began = time.monotonic()
    assert ws.settle_copies() is False
    assert time.monotonic() - began < 1.2, "the wait got what was left of the grace period, not a new one"


def test_a_lost_copy_makes_l2_due_at_the_next_checkpoint_whatever_the_count(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """nodeLocalEvery: 3 — the copy after step 3 is torn by step 4; the checkpoint after step 4 makes one at
    once (in the foreground), not after step 6."""
    plan = {"pod": {"uid": "u1"}, "dirs": {"scratch": str(tmp_path / "scratch"), "shared": ""},
            "workspace": {"medium": "Disk", "sizeLimit": None}, "checkpoint": {"nodeLocalEvery": 3, "sharedEvery": 0}}
    ws = Workspace(plan, 0, [].append)
    ws.restore()
    data = ws.path / "data"
    data.write_bytes(b"a" * 4096)
    ws.checkpoint(["s1"], False)
    ws.checkpoint(["s1", "s2"], False)
    gate = Gate(monkeypatch)
    ws.checkpoint(["s1", "s2", "s3"], False)
    assert gate.started.wait(10)
    data.unlink()  # step 4 removes what step 3 left, before the copy read it
    (ws.path / "other").write_bytes(b"b")
    gate.release.set()
    assert ws.settle_copies(10) and "L2" not in ws.saved and ws.copier.lost
    ws.checkpoint(["s1", "s2", "s3", "s4"], False)
    assert ws.saved["L2"]["seq"] == 4 and ws.saved["L2"]["background"] is False and not ws.copier.lost
