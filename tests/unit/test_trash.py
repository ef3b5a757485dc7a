"""A deleted object's directories are out of the way at once and removed in the background."""

from __future__ import annotations

from pathlib import Path

from podline.controller import trash
from tests.conftest import wait_for


def test_a_discarded_directory_is_gone_at_once_and_removed_in_the_background(tmp_path: Path) -> None:
    target = tmp_path / "pods" / "ns" / "name" / "uid"
    (target / "deep").mkdir(parents=True)
    for i in range(200):
        (target / "deep" / f"f{i}").write_text("x")
    trash.discard(target, then_rmdir=target.parent)
    assert not target.exists()  # the name is free at once
    wait_for(lambda: not (tmp_path / "pods" / "ns" / "name").exists())  # and the empty parent goes too
    assert (tmp_path / "pods" / "ns").exists()


def test_a_parent_holding_something_else_stays_and_a_missing_target_is_no_error(tmp_path: Path) -> None:
    parent = tmp_path / "name"
    (parent / "back").mkdir(parents=True)  # a pipeline of the same name is back
    trash.discard(parent / "gone", then_rmdir=parent)
    wait_for(lambda: not [p for p in parent.iterdir() if trash.MARK in p.name])
    assert (parent / "back").exists()


def test_what_an_earlier_controller_left_aside_is_removed_by_the_next_discard(tmp_path: Path) -> None:
    left = tmp_path / f".old{trash.MARK}0123abcd"
    (left / "sub").mkdir(parents=True)
    (tmp_path / "keep").mkdir()
    (tmp_path / "next").mkdir()
    trash.discard(tmp_path / "next")
    wait_for(lambda: not left.exists() and not [p for p in tmp_path.iterdir() if trash.MARK in p.name])
    assert (tmp_path / "keep").exists()


def test_a_start_sweeps_what_a_stopped_controller_left_in_a_directory(tmp_path: Path) -> None:
    left = tmp_path / f".podline-uid-0{trash.MARK}89abcdef"
    (left / "data").mkdir(parents=True)
    (tmp_path / "podline-live-0").mkdir()
    trash.sweep(tmp_path)
    wait_for(lambda: not left.exists())
    assert (tmp_path / "podline-live-0").exists()
