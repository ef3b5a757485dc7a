"""What a pipeline runner trusts and obeys: when the workspace itself (L1) still is a checkpoint, and which
limits a plan rewritten by `apply` changes while a shard runs (backoffLimit, activeDeadlineSeconds)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from podline.plan.pipeline import plan_pipeline
from podline.runtime import checkpoint as ck
from podline.runtime import container, shard_rules
from podline.runtime.pipeline import PipelineRunner


def workspace(root: Path) -> tuple[Path, ck.Snapshot]:
    ws = root / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "tool.sh").write_text("#!/bin/sh\necho ran\n")
    os.chmod(ws / "tool.sh", 0o755)
    (ws / "sub" / "data").write_text("data\n")
    return ws, ck.take_l1(ws, 1, ["a"])


def test_an_untouched_workspace_is_its_own_checkpoint(tmp_path: Path) -> None:
    ws, snap = workspace(tmp_path)
    (ws / "leftover").write_text("x")
    assert ck.l1_matches(ws, snap)
    assert not (ws / "leftover").exists()


def test_a_mode_changed_by_a_failed_step_is_no_l1(tmp_path: Path) -> None:
    """chmod leaves size, mtime and inode alone: only the recorded mode tells."""
    ws, snap = workspace(tmp_path)
    os.chmod(ws / "tool.sh", 0o600)
    assert not ck.l1_matches(ws, snap)


def test_a_copy_puts_the_mode_back_where_l1_would_not(tmp_path: Path) -> None:
    ws, snap = workspace(tmp_path)
    ck.save_copy(ws, tmp_path / "L2", snap, durable=False)
    os.chmod(ws / "tool.sh", 0o600)
    copy_dir, manifest = ck.newest(tmp_path / "L2")
    ck.restore_copy(copy_dir, manifest, ws)
    assert (os.stat(ws / "tool.sh").st_mode & 0o777) == 0o755
    assert ck.l1_matches(ws, ck.take_l1(ws, 1, ["a"]))


def test_new_bytes_under_the_old_mtime_are_no_l1(tmp_path: Path) -> None:
    """`touch -r`, `cp -p`, `tar x`: a same-size rewrite with the recorded mtime put back; only ctime tells."""
    ws, snap = workspace(tmp_path)
    target = ws / "sub" / "data"
    before = os.stat(target)
    time.sleep(0.01)  # past the coarse clock's tick
    with open(target, "r+") as f:  # in place: same inode, same size
        f.write("DATA")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(target).st_mtime_ns == snap.files["sub/data"]["mtime"]
    assert not ck.l1_matches(ws, snap)


@pytest.mark.parametrize("change", ["symlink", "directory", "fifo"])
def test_a_file_replaced_by_another_type_is_no_l1(tmp_path: Path, change: str) -> None:
    ws, snap = workspace(tmp_path)
    target = ws / "sub" / "data"
    target.unlink()
    {"symlink": lambda: target.symlink_to("../tool.sh"), "directory": target.mkdir,
     "fifo": lambda: os.mkfifo(target)}[change]()
    assert not ck.l1_matches(ws, snap)


def test_a_manifest_from_before_modes_still_matches(tmp_path: Path) -> None:
    ws, snap = workspace(tmp_path)
    for rec in snap.files.values():
        del rec["mode"], rec["ctime"]
    assert ck.l1_matches(ws, snap)


# --- limits a live plan change brings ------------------------------------------------------------------
def runner(tmp_path: Path, retries: int, deadline: int | None = None) -> tuple[PipelineRunner, Path]:
    spec = {"backoffLimit": retries, "steps": [{"name": "a", "image": "busybox", "command": ["true"]}]}
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    manifest = {"apiVersion": "podline.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": "p"}, "spec": spec}
    plan = plan_pipeline(manifest, "uid-1", lambda *a: None, generation=1,
                         dirs={"shared": str(tmp_path / "shared"), "scratch": str(tmp_path / "scratch")},
                         shard_dir=str(tmp_path / "shards" / "{shard}"), retries={"0": retries, "1": 9})
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return PipelineRunner(plan, tmp_path, 0, path), path


def rewrite(path: Path, **changes: object) -> None:
    plan = json.loads(path.read_text())
    tmp = path.with_name("plan.tmp")
    tmp.write_text(json.dumps({**plan, **changes, "generation": plan["generation"] + 1}))
    os.replace(tmp, path)  # as the controller writes it: aside, then renamed


def test_a_lowered_backoff_limit_counts_the_retries_already_made(tmp_path: Path) -> None:
    run, path = runner(tmp_path, retries=6)
    run.retries_left, run.status["stepRetries"] = 4, 2  # two step retries made in this attempt
    rewrite(path, retries={"0": 3, "1": 9})
    run._reload_plan()
    assert run.retries_left == 1 and run.plan["generation"] == 2
    rewrite(path, retries={"0": 1, "1": 9})  # below what was used: no more retries, never negative
    run._reload_plan()
    assert run.retries_left == 0
    rewrite(path, retries={"0": 10, "1": 0})
    run._reload_plan()
    assert run.retries_left == 8


def test_a_new_deadline_counts_from_when_the_steps_began(tmp_path: Path) -> None:
    run, path = runner(tmp_path, retries=0)
    run.began_at = time.time() - 100
    assert run._deadline_at() is None
    rewrite(path, activeDeadlineSeconds=30)
    run._reload_plan()
    assert run._deadline_at() == pytest.approx(run.began_at + 30)
    assert run._timeout() == 0.0, "already past it: the runner acts at once"
    rewrite(path, activeDeadlineSeconds=None)
    run._reload_plan()
    assert run._deadline_at() is None


def test_a_copy_brings_back_fifos_and_directory_modes(tmp_path: Path) -> None:
    ws, _ = workspace(tmp_path)
    os.mkfifo(ws / "pipe")
    (ws / "private").mkdir()
    (ws / "private" / "key").write_text("k")
    os.chmod(ws / "private", 0o700)
    (ws / "frozen").mkdir()
    (ws / "frozen" / "f").write_text("f")
    os.chmod(ws / "frozen", 0o555)
    snap = ck.take_l1(ws, 2, ["a", "b"])
    ck.save_copy(ws, tmp_path / "L2", snap, durable=False, expected=None)
    os.chmod(ws / "frozen", 0o755)  # what a failed step did: a mode changed, the fifo and a directory gone
    os.unlink(ws / "pipe")
    shutil.rmtree(ws / "private")
    assert not ck.l1_matches(ws, snap)
    copy_dir, manifest = ck.newest(tmp_path / "L2")
    ck.restore_copy(copy_dir, manifest, ws)
    assert stat.S_ISFIFO(os.lstat(ws / "pipe").st_mode)
    assert stat.S_IMODE(os.stat(ws / "private").st_mode) == 0o700 and (ws / "private" / "key").read_text() == "k"
    assert stat.S_IMODE(os.stat(ws / "frozen").st_mode) == 0o555 and (ws / "frozen" / "f").read_text() == "f"
    assert ck.l1_matches(ws, ck.take_l1(ws, 2, ["a", "b"]))
    os.chmod(ws / "frozen", 0o755)  # let tmp_path be removed


def test_a_restore_puts_a_fifo_back_where_a_later_step_left_a_file_in_a_read_only_directory(tmp_path: Path) -> None:
    ws, _ = workspace(tmp_path)
    (ws / "d").mkdir()
    os.mkfifo(ws / "d" / "pipe")
    snap = ck.take_l1(ws, 3, ["a"])
    ck.save_copy(ws, tmp_path / "L2", snap, durable=False, expected=None)
    os.unlink(ws / "d" / "pipe")
    (ws / "d" / "pipe").write_text("not a pipe")
    (ws / "d" / "extra").write_text("x")
    os.chmod(ws / "d", 0o555)
    copy_dir, manifest = ck.newest(tmp_path / "L2")
    ck.restore_copy(copy_dir, manifest, ws)
    assert stat.S_ISFIFO(os.lstat(ws / "d" / "pipe").st_mode) and not (ws / "d" / "extra").exists()
    assert stat.S_IMODE(os.stat(ws / "d").st_mode) == snap.dir_modes["d"]


def test_a_step_retry_waits_as_a_container_restart_does_doubling_to_the_cap() -> None:
    assert shard_rules.retry_delay(1) == container.BACKOFF_BASE
    assert shard_rules.retry_delay(3) == min(container.BACKOFF_CAP, 4 * container.BACKOFF_BASE)
    for retries in (40, 10**6):  # far past the cap: the cap, never an overflow
        assert shard_rules.retry_delay(retries) == container.BACKOFF_CAP
