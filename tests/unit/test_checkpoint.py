"""Checkpoint copies: exact round trips, hard links for unchanged files, atomicity, corruption detection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from podline.runtime import checkpoint as ck


def make_workspace(root: Path) -> Path:
    ws = root / "ws"
    (ws / "sub" / "deep").mkdir(parents=True)
    (ws / "a.txt").write_text("alpha\n")
    (ws / "sub" / "b.bin").write_bytes(bytes(range(256)) * 100)
    (ws / "sub" / "deep" / "empty").write_bytes(b"")
    (ws / "link").symlink_to("a.txt")
    (ws / "emptydir").mkdir()
    return ws


def tree(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "->" + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_bytes()
        else:
            out[rel] = "dir"
    return out


def test_copy_and_restore_round_trip_exactly(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    before = tree(ws)
    snap = ck.take_l1(ws, 1, ["one"])
    written = ck.save_copy(ws, tmp_path / "L2", snap, durable=False)
    assert written == 6 + 25600
    target = tmp_path / "restored"
    copied = ck.restore_copy(tmp_path / "L2" / "1", ck.newest(tmp_path / "L2")[1], target)
    assert copied == written and tree(target) == before


def test_unchanged_files_are_hard_links_to_the_previous_copy(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    ck.save_copy(ws, tmp_path / "L2", ck.take_l1(ws, 1, ["one"]), durable=False)
    (ws / "new.txt").write_text("new\n")
    written = ck.save_copy(ws, tmp_path / "L2", ck.take_l1(ws, 2, ["one", "two"]), durable=True)
    assert written == 4, "only the new file is copied"
    assert sorted(os.listdir(tmp_path / "L2")) == ["2"], "only the newest copy is kept"
    assert os.stat(tmp_path / "L2" / "2" / "data" / "sub" / "b.bin").st_nlink == 1  # its twin was pruned
    manifest = ck.newest(tmp_path / "L2")[1]
    assert manifest.steps == ["one", "two"] and set(manifest.files) == {"a.txt", "sub/b.bin", "sub/deep/empty",
                                                                        "new.txt"}


def test_unfinished_copy_is_never_taken_for_a_checkpoint(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    ck.save_copy(ws, tmp_path / "L3", ck.take_l1(ws, 1, ["one"]), durable=True)
    (tmp_path / "L3" / ".tmp-2-999" / "data").mkdir(parents=True)  # a crash mid-checkpoint
    (tmp_path / "L3" / "3").mkdir()  # renamed but without a manifest: not a checkpoint either
    found = ck.newest(tmp_path / "L3")
    assert found is not None and found[1].seq == 1


def test_flipped_bit_in_a_copy_is_detected(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    ck.save_copy(ws, tmp_path / "L2", ck.take_l1(ws, 1, ["one"]), durable=False)
    victim = tmp_path / "L2" / "1" / "data" / "sub" / "b.bin"
    data = bytearray(victim.read_bytes())
    data[5000] ^= 0x80
    victim.write_bytes(bytes(data))
    with pytest.raises(ck.Corrupt, match="hash mismatch"):
        ck.restore_copy(tmp_path / "L2" / "1", ck.newest(tmp_path / "L2")[1], tmp_path / "fresh")


def test_missing_file_in_a_copy_is_detected(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    ck.save_copy(ws, tmp_path / "L2", ck.take_l1(ws, 1, ["one"]), durable=False)
    (tmp_path / "L2" / "1" / "data" / "a.txt").unlink()
    with pytest.raises(ck.Corrupt):
        ck.restore_copy(tmp_path / "L2" / "1", ck.newest(tmp_path / "L2")[1], tmp_path / "fresh")


def test_l1_accepts_new_files_but_not_touched_ones(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    snap = ck.take_l1(ws, 1, ["one"])
    (ws / "partial-output").write_text("half")
    (ws / "newdir").mkdir()
    assert ck.l1_matches(ws, snap)
    assert not (ws / "partial-output").exists() and not (ws / "newdir").exists(), "leftovers removed"
    with open(ws / "a.txt", "a") as handle:
        handle.write("more\n")
    assert not ck.l1_matches(ws, snap)


def test_restore_keeps_matching_files_and_replaces_the_rest(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    ck.save_copy(ws, tmp_path / "L2", ck.take_l1(ws, 1, ["one"]), durable=False)
    before = tree(ws)
    (ws / "a.txt").write_text("ALPHA\n")  # same size, other bytes
    (ws / "junk").write_text("x")
    copied = ck.restore_copy(tmp_path / "L2" / "1", ck.newest(tmp_path / "L2")[1], ws)
    assert copied == 6 and tree(ws) == before


@pytest.mark.parametrize("size", [0, 4095, 4096, ck.DIRECT_CHUNK, 2 * ck.DIRECT_CHUNK + 123])
def test_copies_past_the_page_cache_are_exact(tmp_path: Path, size: int) -> None:
    """Node-local copies are written with O_DIRECT in whole blocks, the tail through the cache."""
    ws = tmp_path / "ws"
    ws.mkdir()
    content = os.urandom(size)
    (ws / "f").write_bytes(content)
    snap = ck.take_l1(ws, 1, [])
    assert ck.save_copy(ws, tmp_path / "L2", snap, durable=False) == size
    copy_dir, manifest = ck.newest(tmp_path / "L2")
    assert (copy_dir / "data" / "f").read_bytes() == content
    assert manifest.files["f"]["hash"] == ck.hash_file(ws / "f")


def test_big_copies_read_ahead_and_stay_exact(tmp_path: Path) -> None:
    from podline.runtime.copying import OVERLAP_MIN, copy_hashing, direct_buffer
    src = tmp_path / "big"
    src.write_bytes(os.urandom(OVERLAP_MIN + 12345))
    with direct_buffer() as buffer:
        digest = copy_hashing(src, [(tmp_path / "a", False), (tmp_path / "b", True)], buffer=buffer)
    assert digest == ck.hash_file(src)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes() == src.read_bytes()
