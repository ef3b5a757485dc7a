"""Stage-out that can be stopped and leaves nothing behind: a stop request ends the copy at the next file,
copies aside that a killed runner left are removed by the next stage-out, a shard's outputs appear together
or not at all, and links are made without setting their times (on sshfs that fails, or sets the target's)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from podline.runtime import publish as pub
from podline.runtime.publish import publish
from podline.runtime.workspace import GivenUp, StageOutStopped, Workspace


def never() -> None:
    """The attempt was not given up."""


def _workspace(tmp_path: Path) -> Workspace:
    plan = {"pod": {"uid": "u1"}, "dirs": {"scratch": str(tmp_path / "scratch"), "shared": str(tmp_path / "sh")},
            "workspace": {"medium": "Disk", "sizeLimit": None}, "checkpoint": {}}
    ws = Workspace(plan, 0, [].append, background_l2=False)
    ws.path.mkdir(parents=True)
    return ws


def _litter(root: Path) -> list[Path]:
    return [p for p in root.rglob("*podline-tmp*")]


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_stop_request_ends_the_copy_at_the_next_file_and_removes_the_copy_aside(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _workspace(tmp_path)
    (ws.path / "res").mkdir()
    for i in range(200):
        (ws.path / "res" / f"f{i:03}").write_text(str(i))
    copied: list[str] = []
    real_copy2 = shutil.copy2

    def copy2(src: Any, dst: Any, **kwargs: Any) -> Any:
        copied.append(str(src))
        if len(copied) == 3:
            ws.stop_requested()  # SIGTERM (`delete`) arrives while the third file is copied
        return real_copy2(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copy2", copy2)
    out = tmp_path / "out"
    with pytest.raises(StageOutStopped):
        ws.stage_out([{"path": "res", "destination": str(out)}], 0, 1)
    assert len(copied) == 3, "the stop request is looked at before every file"
    assert not out.exists() and not _litter(tmp_path)


def test_a_stop_request_ends_a_merge_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _workspace(tmp_path)
    (ws.path / "res").mkdir()
    for i in range(50):
        (ws.path / "res" / f"f{i:02}").write_text(str(i))
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine").write_text("kept")
    calls = [0]
    real_copy2 = shutil.copy2

    def copy2(src: Any, dst: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 5:
            ws.stop_requested()
        return real_copy2(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copy2", copy2)
    with pytest.raises(GivenUp):
        ws.stage_out([{"path": "res", "destination": str(out)}], 0, 1)
    assert calls[0] == 5 and sorted(os.listdir(out)) == ["mine"]


def test_copies_aside_a_killed_runner_left_are_removed_by_the_next_stage_out(tmp_path: Path) -> None:
    out_dir = tmp_path / "ws" / "res"
    out_dir.mkdir(parents=True)
    (out_dir / "a").write_text("a")
    dead, alive = _dead_pid(), os.getpid()
    stale = [tmp_path / f".out.podline-tmp-{dead}-{pub.HOST_TAG}-0badc0de",  # this host, process gone
             tmp_path / f".out.podline-tmp-{dead}-0badc0de"]  # the name before the host was in it
    kept = [tmp_path / f".out.podline-tmp-{alive}-{pub.HOST_TAG}-0badc0de",  # still copying
            tmp_path / f".out.podline-tmp-{dead}-ffffffff-0badc0de",  # another host: its pid says nothing here
            tmp_path / f".other.podline-tmp-{dead}-{pub.HOST_TAG}-0badc0de"]  # another destination's
    for path in stale + kept:
        (path / "sub").mkdir(parents=True)
        (path / "sub" / "f1").write_text("half")
    publish(out_dir, tmp_path / "out", never)
    assert (tmp_path / "out" / "a").read_text() == "a"
    assert [p.exists() for p in stale + kept] == [False, False, True, True, True]


def test_a_merge_removes_the_stale_copies_aside_of_the_files_it_places(tmp_path: Path) -> None:
    out_dir = tmp_path / "ws" / "res"
    (out_dir / "sub").mkdir(parents=True)
    (out_dir / "sub" / "f").write_text("new")
    dest = tmp_path / "out"
    (dest / "sub").mkdir(parents=True)
    stale = dest / "sub" / f".f.podline-tmp-{_dead_pid()}-{pub.HOST_TAG}-0badc0de"
    stale.write_text("half")
    publish(out_dir, dest, never)
    assert (dest / "sub" / "f").read_text() == "new" and not stale.exists()


def test_a_shard_whose_second_output_cannot_be_published_publishes_none(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    for name in ("a", "b"):
        (ws.path / name).mkdir()
        (ws.path / name / "f").write_text(name)
    (tmp_path / "merged").mkdir()
    (tmp_path / "not-a-dir").write_text("a file where a directory should be")
    outputs = [{"path": "a", "destination": str(tmp_path / "outA")},
               {"path": "a", "destination": str(tmp_path / "merged")},
               {"path": "b", "destination": str(tmp_path / "not-a-dir" / "outB")}]
    with pytest.raises(OSError):
        ws.stage_out(outputs, 0, 1)
    assert not (tmp_path / "outA").exists() and os.listdir(tmp_path / "merged") == []
    assert not _litter(tmp_path)


def test_a_rename_failing_midway_leaves_no_copy_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Renames are not atomic together: the outputs renamed before the failure stay (documented), the rest
    of the copies aside go."""
    ws = _workspace(tmp_path)
    for name in ("a", "b", "c"):
        (ws.path / name).write_text(name)
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(dst).name == "b":
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    outputs = [{"path": n, "destination": str(tmp_path / f"out{n}")} for n in ("a", "b", "c")]
    with pytest.raises(OSError):
        ws.stage_out(outputs, 0, 1)
    assert (tmp_path / "outa" / "a").exists() and not (tmp_path / "outc" / "c").exists()
    assert not _litter(tmp_path)


def test_links_are_copied_without_setting_their_times(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sshfs: utime on a link follows it (the target's times change) or fails for a dangling one (ENOENT)."""
    out_dir = tmp_path / "ws" / "res"
    out_dir.mkdir(parents=True)
    (out_dir / "data-v1").write_text("1")
    (out_dir / "latest").symlink_to("data-v1")
    (out_dir / "gone").symlink_to("nowhere")
    real_utime = os.utime

    def utime(path: Any, *args: Any, follow_symlinks: bool = True, **kwargs: Any) -> None:
        if not follow_symlinks and os.path.islink(path):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        real_utime(path, *args, follow_symlinks=follow_symlinks, **kwargs)

    monkeypatch.setattr(os, "utime", utime)
    monkeypatch.setattr(os, "supports_follow_symlinks", os.supports_follow_symlinks | {utime})  # as shutil asks
    dest = tmp_path / "new" / "out"
    assert publish(out_dir, dest, never) == 1
    assert os.readlink(dest / "latest") == "data-v1" and os.readlink(dest / "gone") == "nowhere"
    assert (dest / "data-v1").stat().st_mtime_ns == (out_dir / "data-v1").stat().st_mtime_ns
