"""Input artifacts are moved into place as Argo's executor does (load beside, then rename): a file or an empty
directory at the path is replaced, a directory with files in it (a user's hostPath or claim) is never removed.
And a step's result read from its stdout as Argo's executor reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from podline.runtime.argo_io import MAX_VALUE, ArgoIOError, _read_result, prepare

CONTAINER = {"name": "main", "mounts": [{"mountPath": "/data", "volume": "data"}]}


def _prepare(volume: Path, source: Path, path: str = "/data") -> None:
    io = {"inputArtifacts": [{"name": "a", "path": path, "from": str(source)}]}
    prepare(io, CONTAINER, {"data": volume}, runtime="bwrap")


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if "podline-staging" in p.name)


def test_an_artifact_never_replaces_a_directory_with_files_in_it(tmp_path: Path) -> None:
    volume = tmp_path / "user-volume"
    volume.mkdir()
    (volume / "keep.txt").write_text("precious")
    source = tmp_path / "artifact"
    source.write_text("new")
    with pytest.raises(ArgoIOError, match=r"input artifact a: /data is where volume data is mounted"):
        _prepare(volume, source)
    (volume / "sub").mkdir()
    (volume / "sub" / "keep.txt").write_text("precious")
    with pytest.raises(ArgoIOError, match=r"input artifact a: cannot be put at /data/sub: .*nothing there was removed"):
        _prepare(volume, source, "/data/sub")
    assert (volume / "keep.txt").read_text() == (volume / "sub" / "keep.txt").read_text() == "precious"
    assert _leftovers(tmp_path) == _leftovers(volume) == []


def test_a_directory_artifact_never_merges_into_a_full_directory(tmp_path: Path) -> None:
    volume = tmp_path / "v"
    (volume / "out").mkdir(parents=True)
    (volume / "out" / "keep.txt").write_text("precious")
    source = tmp_path / "tree"
    source.mkdir()
    (source / "x").write_text("x")
    with pytest.raises(ArgoIOError):
        _prepare(volume, source, "/data/out")
    assert sorted(p.name for p in (volume / "out").iterdir()) == ["keep.txt"]
    assert _leftovers(volume) == []


def test_a_file_or_an_empty_directory_at_the_path_is_replaced(tmp_path: Path) -> None:
    volume = tmp_path / "v"
    volume.mkdir()
    (volume / "old.txt").write_text("old")
    (volume / "empty").mkdir()
    source = tmp_path / "artifact"
    source.write_text("new")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("f")
    _prepare(volume, source, "/data/old.txt")
    _prepare(volume, tree, "/data/empty")
    _prepare(volume, source, "/data/fresh/new.txt")
    assert (volume / "old.txt").read_text() == "new"
    assert (volume / "empty" / "sub" / "f").read_text() == "f"
    assert (volume / "fresh" / "new.txt").read_text() == "new"
    assert _leftovers(volume) == []


@pytest.mark.parametrize(("written", "expected"), [
    (b"x" * 300_000 + b"\n", b"x" * MAX_VALUE),  # the newline goes first: a full result keeps MAX_VALUE bytes
    (b"a" + b"y" * MAX_VALUE, b"y" * MAX_VALUE),  # the last MAX_VALUE bytes
    (b"short\n\n", b"short\n"),  # one newline only
    (b"", b""),
])
def test_a_result_is_stdout_less_one_newline_then_its_last_256_kib(tmp_path: Path, written: bytes,
                                                                   expected: bytes) -> None:
    out = tmp_path / "stdout"
    out.write_bytes(written)
    assert _read_result(out) == expected.decode()
