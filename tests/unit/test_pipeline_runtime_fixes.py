"""Pipeline runtime fixes: a background L2 copy torn by a step that renames or removes files (the next copy is
made in the foreground, so a failing step finds it), a retried step taking the spec `apply` brought and
recording that spec's generation, sparse files copied and restored with their holes, and a step that
succeeds on retry showing no earlier failure.

Background copies are held at their start by a gate around `save_copy` (as in test_l2_copier), so the
step's rename happens during the copy deterministically.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import xxhash

from podline.plan.pipeline import plan_pipeline
from podline.runtime import checkpoint as ck
from podline.runtime import copier as copier_module
from podline.runtime import copying
from podline.runtime.pipeline import PipelineRunner
from podline.runtime.workspace import Workspace
from tests.unit.test_l2_copier import workspace


# --- 1. a background copy torn by a rename -----------------------------------------------------------------
class Gate:
    """Holds each background copy at its start until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        real = ck.save_copy

        def gated(*args: Any) -> int:
            self.started.set()
            assert self.release.wait(10), "the test never released the copy"
            return real(*args)

        monkeypatch.setattr(copier_module.ck, "save_copy", gated)


def outputs_of_s1(ws: Workspace) -> None:
    (ws.path / "d").mkdir()
    for i in range(20):
        (ws.path / "d" / f"f{i}").write_text(f"{i}\n")


def test_a_directory_renamed_during_a_background_copy_tears_it_and_the_next_copy_is_foreground(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs: list[str] = []
    ws = workspace(tmp_path, logs)
    outputs_of_s1(ws)
    gate = Gate(monkeypatch)
    ws.checkpoint(["s1"], False)
    assert gate.started.wait(10)
    os.rename(ws.path / "d", ws.path / "d2")  # s2: `mv d d2` while seq 1 is being copied
    gate.release.set()
    assert ws.settle_copies(10)
    assert ws.copier.torn, logs
    assert ck.newest(ws.levels["L2"]) is None and any("dropped" in line for line in logs)
    ws.checkpoint(["s1", "s2"], False)  # made before s3 may start: s3 renames again at once
    assert ws.saved["L2"]["seq"] == 2 and ws.saved["L2"]["background"] is False
    os.rename(ws.path / "d2", ws.path / "d3")  # s3 renames, then fails
    snap, level = ws.restore()
    assert level == "L2" and snap is not None and snap.steps == ["s1", "s2"]
    assert sorted(os.listdir(ws.path)) == ["d2"] and len(os.listdir(ws.path / "d2")) == 20


def test_a_file_removed_before_a_live_copy_reads_it_is_a_tear(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "d").mkdir(parents=True)
    (ws / "d" / "f").write_text("f\n")
    snap = ck.take_l1(ws, 1, ["s1"])
    expected = {"d/f": ck.hash_file(ws / "d" / "f")}
    (ws / "d" / "f").unlink()
    with pytest.raises(ck.Torn):
        ck.save_copy(ws, tmp_path / "L2", snap, False, expected)
    with pytest.raises(FileNotFoundError):  # nothing was running: a copy of a workspace that lost a file fails
        ck.save_copy(ws, tmp_path / "L2", snap, False)
    assert ck.newest(tmp_path / "L2") is None


def test_a_copy_failing_on_its_own_side_is_no_tear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk fails the copy without switching to foreground copies (they would fail as well)."""
    logs: list[str] = []
    ws = workspace(tmp_path, logs)
    outputs_of_s1(ws)

    def full(*_: Any, **__: Any) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck, "_copy_hashing", full)
    ws.checkpoint(["s1"], False)
    assert ws.settle_copies(10)
    assert not ws.copier.torn and any("failed" in line for line in logs)


# --- 2 and 4. a retried step after `apply`; the status of a step that succeeds on retry --------------------
class FakeWorker:
    """Stands for a ContainerWorker: records the spec it was given, never runs anything."""

    started: list[dict[str, Any]] = []

    def __init__(self, spec: dict[str, Any], *_: Any) -> None:
        self.spec = spec

    def start(self) -> None:
        FakeWorker.started.append(self.spec)

    def snapshot(self) -> dict[str, Any]:
        return {"state": {"terminated": {"exitCode": 0}}}

    def succeeded(self) -> bool:
        return True


def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[PipelineRunner, Path]:
    steps = [{"name": "a", "image": "busybox", "command": ["sh", "-c", "echo a-v1"]},
             {"name": "b", "image": "busybox", "command": ["sh", "-c", "echo b-v1; exit 1"]}]
    manifest = {"apiVersion": "podline.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": "p"},
                "spec": {"backoffLimit": 4, "steps": steps}}
    plan = plan_pipeline(manifest, "uid-1", lambda *a: None, generation=1,
                         dirs={"shared": str(tmp_path / "shared"), "scratch": str(tmp_path / "scratch")},
                         shard_dir=str(tmp_path / "shards" / "{shard}"), retries={"0": 4})
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    run = PipelineRunner(plan, tmp_path, 0, path)
    monkeypatch.setattr("podline.runtime.pipeline.ContainerWorker", FakeWorker)
    monkeypatch.setattr(run.engine, "prepare", lambda *a, **k: None)
    FakeWorker.started = []
    return run, path


def apply_commands(path: Path, **commands: str) -> None:
    """What the controller does after `apply`: the plan file rewritten (aside, then renamed)."""
    plan = json.loads(path.read_text())
    for spec in plan["steps"]:
        if spec["name"] in commands:
            spec["command"] = ["sh", "-c", commands[spec["name"]]]
    tmp = path.with_name("plan.tmp")
    tmp.write_text(json.dumps({**plan, "generation": plan["generation"] + 1}))
    os.replace(tmp, path)


def test_a_step_waiting_for_its_retry_takes_the_applied_spec_and_records_its_generation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, path = runner(tmp_path, monkeypatch)
    run.steps["b"].update(phase="Pending", attempts=1, reason="Error", message="exit code 1")  # failed once
    apply_commands(path, b="echo b-v2")
    run._start("b")
    assert FakeWorker.started[-1]["command"] == ["sh", "-c", "echo b-v2"]
    assert run.steps["b"]["generation"] == 2 and run.steps["b"]["attempts"] == 2


def test_a_running_step_keeps_its_spec_and_takes_the_applied_one_at_its_next_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, path = runner(tmp_path, monkeypatch)
    run._start("a")
    apply_commands(path, a="echo a-v2")
    run._reload_plan()  # while `a` runs: it keeps what it started with, and says so
    assert run.specs["a"]["command"] == ["sh", "-c", "echo a-v1"] and run.steps["a"]["generation"] == 1
    run.running.pop("a")  # it failed; its retry starts after the plan was read
    run._start("a")
    assert FakeWorker.started[-1]["command"] == ["sh", "-c", "echo a-v2"] and run.steps["a"]["generation"] == 2


def test_a_step_not_yet_started_records_the_generation_of_its_spec_not_of_the_plan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, path = runner(tmp_path, monkeypatch)
    run._start("a")
    apply_commands(path, b="echo b-v2")
    run._reload_plan()
    run.running.pop("a")
    run._start("a")  # `a` is the same in generation 2: it runs generation 2's spec
    run._start("b")
    assert run.steps["b"]["generation"] == 2 and FakeWorker.started[-1]["command"] == ["sh", "-c", "echo b-v2"]


def test_a_step_that_succeeds_on_retry_shows_no_earlier_failure(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run, _ = runner(tmp_path, monkeypatch)
    run.steps["a"].update(phase="Pending", attempts=1, reason="Error", message="exit code 3", exitCode=3)
    run._start("a")
    assert run._settle("a", run.running["a"])  # type: ignore[arg-type]
    step = run.steps["a"]
    assert step["phase"] == "Succeeded" and step["exitCode"] == 0
    assert "reason" not in step and "message" not in step


# --- 3. sparse files ---------------------------------------------------------------------------------------
MiB = 1 << 20


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def sparse_file(path: Path, size: int, data: dict[int, bytes]) -> bytes:
    """A file of `size` bytes, holes but for `data` (offset -> bytes); returns its whole content."""
    with open(path, "wb") as handle:
        handle.truncate(size)
        for offset, chunk in data.items():
            handle.seek(offset)
            handle.write(chunk)
    content = bytearray(size)
    for offset, chunk in data.items():
        content[offset:offset + len(chunk)] = chunk
    return bytes(content)


SHAPES = {
    "only a hole": {},
    "data in the middle": {5 * MiB + 123: os.urandom(70_000)},
    "data at both ends": {0: os.urandom(9000), 40 * MiB - 5000: os.urandom(5000)},
    "many extents": {i * MiB: os.urandom(4096) for i in range(0, 40, 3)},
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("direct", [False, True])
def test_a_sparse_file_is_copied_with_its_holes_and_the_hash_of_its_content(tmp_path: Path, shape: str,
                                                                             direct: bool) -> None:
    content = sparse_file(tmp_path / "src", 40 * MiB, SHAPES[shape])
    before = allocated(tmp_path / "src")
    assert before < MiB, "this filesystem keeps holes"
    with copying.direct_buffer() as buffer:
        digest = copying.copy_hashing(tmp_path / "src", [(tmp_path / "a", direct), (tmp_path / "b", False)],
                                      buffer=buffer if direct else None, stop=threading.Event())
    assert digest == xxhash.xxh3_128_hexdigest(content) == copying.hash_file(tmp_path / "src")
    for target in ("a", "b"):
        assert (tmp_path / target).read_bytes() == content
        assert allocated(tmp_path / target) <= before + 64 * 1024


def test_a_limit_on_a_sparse_file_copies_its_first_bytes(tmp_path: Path) -> None:
    content = sparse_file(tmp_path / "src", 8 * MiB, {3 * MiB: b"x" * 5000, 8 * MiB - 10: b"y" * 10})
    limit = 3 * MiB + 100
    digest = copying.copy_hashing(tmp_path / "src", [(tmp_path / "dst", False)], limit=limit)
    assert digest == xxhash.xxh3_128_hexdigest(content[:limit])
    assert (tmp_path / "dst").read_bytes() == content[:limit]


def test_a_sparse_file_makes_a_small_checkpoint_and_a_small_restore(tmp_path: Path) -> None:
    """sizeLimit counts allocated blocks: what passed it must not come back many times bigger."""
    ws = tmp_path / "ws"
    ws.mkdir()
    content = sparse_file(ws / "sparse", 40 * MiB, {MiB: b"data"})
    (ws / "dense").write_bytes(os.urandom(3 * MiB))
    snap = ck.take_l1(ws, 1, ["s1"])
    expected = {rel: ck.hash_file(ws / rel) for rel in snap.files}
    ck.save_copy(ws, tmp_path / "L2", snap, False, expected)
    copy_dir, manifest = ck.newest(tmp_path / "L2")  # type: ignore[misc]
    assert manifest.files["sparse"]["hash"] == xxhash.xxh3_128_hexdigest(content)  # as a dense copy's
    assert allocated(copy_dir / "data" / "sparse") < MiB
    restored = tmp_path / "restored"
    ck.restore_copy(copy_dir, manifest, restored)
    assert allocated(restored / "sparse") < MiB and (restored / "sparse").read_bytes() == content
    assert (restored / "dense").read_bytes() == (ws / "dense").read_bytes()


def test_a_retry_due_that_cannot_start_yet_does_not_make_the_runner_spin(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """helper-84: with an in-place retry past its back-off but no room to start it, the wait was 0 s and the runner
    looped at 75 % CPU; it waits for a change (a step ending wakes it) or CHECK_INTERVAL, and for a back-off still
    running, until it ends."""
    import time

    from podline.runtime.pipeline_retries import CHECK_INTERVAL

    run, _ = runner(tmp_path, monkeypatch)
    run.retry_at = {"b": time.monotonic() - 5}
    assert run._timeout() == CHECK_INTERVAL
    run.retry_at["a"] = time.monotonic() + 0.3
    assert 0.2 < run._timeout() <= 0.3
