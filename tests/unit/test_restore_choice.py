"""Which state a shard resumes from when several are valid (helper-78: an attempt back on a node it ran on
before took that node's older workspace over a newer L3 copy made on another node in between, and ran a
finished step again), and what a copy that fails verification leaves in the shard's record."""

from __future__ import annotations

from pathlib import Path

import pytest

from podline.runtime import checkpoint as ck
from podline.runtime.workspace import Workspace


def on_node(tmp_path: Path, node: str, node_local_every: int = 1) -> Workspace:
    plan = {"pod": {"uid": "u1"}, "dirs": {"scratch": str(tmp_path / node), "shared": str(tmp_path / "shared")},
            "workspace": {"medium": "Disk", "sizeLimit": None},
            "checkpoint": {"nodeLocalEvery": node_local_every, "sharedEvery": 0}}
    return Workspace(plan, 0, lambda message: None, background_l2=False)


def run_steps(ws: Workspace, steps: list[str], major: str | None = None) -> None:
    done = ws_done(ws)
    for name in steps:
        (ws.path / name).write_text(f"{name} made on {ws.path}\n")
        done.append(name)
        ws.checkpoint(list(done), name == major)
    ws.settle_copies(10)


def ws_done(ws: Workspace) -> list[str]:
    l1 = ck.read_l1(ws.l1_path)
    return list(l1.steps) if l1 else []


def test_a_newer_l3_from_another_node_wins_over_this_nodes_older_workspace(tmp_path: Path) -> None:
    first = on_node(tmp_path, "n1")
    assert first.restore() == (None, None)
    run_steps(first, ["a", "b"])  # then cancelled: n1 keeps its workspace (L1 seq 2) and L2 copies
    second = on_node(tmp_path, "n2")
    assert second.restore() == (None, None)  # nothing on n2, no L3 yet: it starts over
    run_steps(second, ["a", "b", "c"], major="c")  # c is major: L3 seq 3; then cancelled in d
    back = on_node(tmp_path, "n1")
    snap, level = back.restore()
    assert level == "L3" and snap is not None and snap.steps == ["a", "b", "c"] and snap.seq == 3
    assert (back.path / "c").read_text() == f"c made on {second.path}\n"
    assert back.rejected == []


@pytest.mark.parametrize("l2", [0, 1], ids=["no-l2", "l2"])
def test_a_newer_copy_that_fails_verification_is_recorded_and_this_nodes_workspace_kept(tmp_path: Path,
                                                                                       l2: int) -> None:
    """The newer copy is checked whole before it may overwrite a valid workspace (helper-81: a corrupt L3 ranked
    above it rewrote it half-way, and with no L2 the shard started over)."""
    first = on_node(tmp_path, "n1", l2)
    first.restore()
    run_steps(first, ["a", "b"])
    second = on_node(tmp_path, "n2", l2)
    second.restore()
    run_steps(second, ["a", "b", "c"], major="c")
    copy_dir, _ = ck.newest(second.levels["L3"])
    flipped = copy_dir / "data" / "c"
    flipped.write_bytes(bytes([flipped.read_bytes()[0] ^ 1]) + flipped.read_bytes()[1:])
    back = on_node(tmp_path, "n1", l2)
    snap, level = back.restore()
    assert snap is not None and snap.steps == ["a", "b"] and level == "L1"
    assert len(back.rejected) == 1 and back.rejected[0].startswith("L3 seq 3: ") and "hash mismatch" in \
        back.rejected[0], back.rejected
    assert not (back.path / "c").exists()


def test_of_two_equal_states_the_nearer_level_is_restored(tmp_path: Path) -> None:
    ws = on_node(tmp_path, "n1")
    ws.restore()
    run_steps(ws, ["a"], major="a")  # L1, L2 and L3 all at seq 1
    again = on_node(tmp_path, "n1")
    assert again.restore()[1] == "L1"
