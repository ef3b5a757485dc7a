"""Checkpoint integrity: manifests sealed by their own hash, no rotten bytes linked from copy to copy, copies
without FIFOs, hard links kept across a restore."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from podline.runtime import checkpoint as ck
from podline.runtime import checkpoint_manifest as cm


def flip_bit(path: Path, marker: bytes, offset: int, keep_mtime: bool = False) -> None:
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    data[data.index(marker) + offset] ^= 1
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def symlinked_workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "v2").mkdir(parents=True)
    (ws / "v3").mkdir()
    (ws / "v2" / "x").write_text("good\n")
    (ws / "v3" / "x").write_text("WRONG\n")
    (ws / "cur").symlink_to("v2")
    return ws


def test_a_flipped_bit_in_a_copy_manifest_is_refused_before_the_workspace_is_touched(tmp_path: Path) -> None:
    ws = symlinked_workspace(tmp_path)
    ck.save_copy(ws, tmp_path / "L2", ck.take_l1(ws, 1, ["s1"]), durable=False)
    manifest = tmp_path / "L2" / "1" / "manifest.json"
    flip_bit(manifest, b'"cur": "v2"', 9)  # cur -> v3: still valid JSON, every file still hashes right
    assert json.loads(manifest.read_text())["links"] == {"cur": "v3"}
    copy_dir, snap = ck.newest(tmp_path / "L2")
    assert snap.problem and "manifest hash mismatch" in snap.problem
    (ws / "v2" / "x").write_text("changed by a failed step\n")
    with pytest.raises(ck.Corrupt, match="manifest hash mismatch"):
        ck.restore_copy(copy_dir, snap, ws)
    assert (ws / "v2" / "x").read_text() == "changed by a failed step\n" and os.readlink(ws / "cur") == "v2"
    (ws / "new").write_text("n")
    ck.save_copy(ws, tmp_path / "L2", ck.take_l1(ws, 2, ["s1", "s2"]), durable=False)
    linked = os.stat(tmp_path / "L2" / "2" / "data" / "v3" / "x").st_nlink
    assert linked == 1, "nothing is hard-linked from a copy whose manifest cannot be trusted"


def test_an_intact_copy_manifest_is_accepted_and_a_legacy_one_only_without_unknown_fields(tmp_path: Path) -> None:
    ws = symlinked_workspace(tmp_path)
    ck.save_copy(ws, tmp_path / "L2", ck.take_l1(ws, 1, ["s1"]), durable=False)
    manifest = tmp_path / "L2" / "1" / "manifest.json"
    doc = json.loads(manifest.read_text())
    assert cm.HASH_FIELD in doc and ck.newest(tmp_path / "L2")[1].problem is None
    legacy = {k: v for k, v in doc.items() if k in cm.LEGACY_FIELDS}  # what the previous version wrote
    manifest.write_text(json.dumps(legacy))
    copy_dir, snap = ck.newest(tmp_path / "L2")
    assert snap.problem is None
    target = tmp_path / "restored"
    ck.restore_copy(copy_dir, snap, target)
    assert os.readlink(target / "cur") == "v2" and (target / "cur" / "x").read_text() == "good\n"
    garbled = {**doc}
    garbled["manifestHasi"] = garbled.pop(cm.HASH_FIELD)  # a bit flipped in the field's name
    garbled["links"] = {"cur": "v3"}
    manifest.write_text(json.dumps(garbled))
    with pytest.raises(ck.Corrupt, match="unknown fields"):
        ck.restore_copy(*ck.newest(tmp_path / "L2"), tmp_path / "again")


def test_a_flipped_bit_in_the_l1_manifest_makes_it_unusable(tmp_path: Path) -> None:
    ws = symlinked_workspace(tmp_path)
    path = tmp_path / "l1.json"
    ck.write_l1(path, ck.take_l1(ws, 1, ["s1"]))
    assert ck.read_l1(path).steps == ["s1"]
    flip_bit(path, b'"s1"', 2)  # "s0": a step done that never ran
    assert ck.read_l1(path) is None


def test_a_durable_copy_does_not_link_bytes_that_rotted_in_the_previous_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    content = "".join(f"{i}\n" for i in range(1, 5001)).encode()
    (ws / "data").write_bytes(content)
    l3 = tmp_path / "L3"
    ck.save_copy(ws, l3, ck.take_l1(ws, 1, ["s1"]), durable=True)
    flip_bit(l3 / "1" / "data" / "data", content[10:11], 0, keep_mtime=True)  # bit rot in the shared copy
    read_back: list[Path] = []
    real = cm.hash_file
    monkeypatch.setattr(cm, "hash_file", lambda path: read_back.append(path) or real(path))
    (ws / "other").write_text("o\n")
    written = ck.save_copy(ws, l3, ck.take_l1(ws, 2, ["s1", "s2"]), expected=None, durable=True)
    assert written == len(content) + 2, "the rotten file is copied again from the workspace"
    assert (l3 / "2" / "data" / "data").read_bytes() == content
    assert read_back == [l3 / "1" / "data" / "data"]
    copy_dir, snap = ck.newest(l3)
    ck.restore_copy(copy_dir, snap, tmp_path / "restored")
    assert (tmp_path / "restored" / "data").read_bytes() == content
    (ws / "third").write_text("3\n")
    read_back.clear()
    written = ck.save_copy(ws, l3, ck.take_l1(ws, 3, ["s1", "s2", "s3"]), durable=True)
    assert written == 2 and sorted(p.name for p in read_back) == ["data", "other"]  # each read back once
    read_back.clear()
    (ws / "fourth").write_text("4\n")
    ck.save_copy(ws, l3, ck.take_l1(ws, 4, ["s1", "s2", "s3", "s4"]), durable=True)
    assert sorted(p.name for p in read_back) == ["third"], "verified files are linked without reading again"


def test_a_node_local_copy_links_without_reading_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "data").write_bytes(b"d" * 10000)
    ck.save_copy(ws, tmp_path / "L2", ck.take_l1(ws, 1, ["s1"]), durable=False)
    monkeypatch.setattr(cm, "hash_file", lambda path: pytest.fail(f"read back {path}"))
    assert ck.save_copy(ws, tmp_path / "L2", ck.take_l1(ws, 2, ["s1", "s2"]), durable=False) == 0


def test_a_fifo_is_not_made_in_a_copy_and_a_restore_makes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    (ws / "d").mkdir(parents=True)
    (ws / "f").write_text("data\n")
    os.mkfifo(ws / "d" / "p")

    def refused(*_: object, **__: object) -> None:
        raise PermissionError(1, "Operation not permitted")  # sshfs

    with monkeypatch.context() as patch:
        patch.setattr(os, "mkfifo", refused)
        ck.save_copy(ws, tmp_path / "L3", ck.take_l1(ws, 1, ["s1"]), durable=True)
    copy_dir, snap = ck.newest(tmp_path / "L3")
    assert snap.fifos == ["d/p"] and not os.path.lexists(copy_dir / "data" / "d" / "p")
    target = tmp_path / "restored"
    ck.restore_copy(copy_dir, snap, target)
    assert stat.S_ISFIFO(os.lstat(target / "d" / "p").st_mode) and (target / "f").read_text() == "data\n"


@pytest.mark.parametrize("durable", [False, True])
def test_hard_links_in_the_workspace_survive_a_restore(tmp_path: Path, durable: bool) -> None:
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "f").write_text("hi\n")
    os.link(ws / "f", ws / "sub" / "h")
    os.link(ws / "f", ws / "z")
    (ws / "alone").write_text("hi\n")
    snap = ck.take_l1(ws, 1, ["i1"])
    assert snap.hardlinks == {"sub/h": "f", "z": "f"}
    assert ck.save_copy(ws, tmp_path / "L", snap, durable=durable) == 6, "a group's bytes are copied once"
    copy_dir, saved = ck.newest(tmp_path / "L")
    assert saved.hardlinks == snap.hardlinks and saved.files["z"]["hash"] == saved.files["f"]["hash"]
    fresh = tmp_path / "fresh"
    ck.restore_copy(copy_dir, saved, fresh)
    assert os.stat(fresh / "f").st_nlink == 3 and os.stat(fresh / "alone").st_nlink == 1
    assert os.stat(fresh / "f").st_ino == os.stat(fresh / "sub" / "h").st_ino == os.stat(fresh / "z").st_ino
    (ws / "z").unlink()  # a failed step broke one link and wrote through another
    (ws / "z").write_text("hi\n")
    with open(ws / "sub" / "h", "a") as handle:
        handle.write("appended\n")
    ck.restore_copy(copy_dir, saved, ws)
    assert (ws / "f").read_text() == "hi\n" and os.stat(ws / "f").st_nlink == 3
    assert os.stat(ws / "f").st_ino == os.stat(ws / "sub" / "h").st_ino == os.stat(ws / "z").st_ino
    with open(ws / "sub" / "h", "a") as handle:
        handle.write("seen under every name\n")
    assert (ws / "z").read_text() == "hi\nseen under every name\n"
    assert ck.l1_matches(ws, ck.take_l1(ws, 1, ["i1"]))


def test_a_hard_linked_file_written_in_the_current_tick_still_matches_its_l1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CI42: l1_matches(ws, take_l1(ws)) was False now and then. Every name of a hard-link group is a file of
    the manifest; making a racy one's mtime older went through each name, and a ctime that moved on between two
    of them left the first name's recorded ctime stale: the workspace no longer matched its own L1."""
    import time

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "f").write_text("x\n")
    os.link(ws / "f", ws / "g")
    now = os.stat(ws / "f").st_mtime_ns
    monkeypatch.setattr(ck.time, "clock_gettime_ns", lambda clock: now)  # as if still within the write's tick
    real_utime = os.utime

    def slow_utime(*args, **kwargs):  # a clock tick passes between two changes
        real_utime(*args, **kwargs)
        time.sleep(0.03)
    monkeypatch.setattr(ck.os, "utime", slow_utime)
    snap = ck.take_l1(ws, 1, ["a"])
    monkeypatch.undo()
    assert snap.files["f"]["mtime"] == snap.files["g"]["mtime"] == now - 1
    assert ck.l1_matches(ws, snap)
