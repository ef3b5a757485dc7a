"""docker-archive details that real `docker save` output has: a repeated layer stored as a link to the first."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from podline.images import ImageError, prepare
from tests import imagebuild as ib


def _saved_with_links(path: Path, second: tarfile.TarInfo) -> Path:
    """A `docker save` archive whose second layer is the first one again, written as `second` (a link)."""
    empty = ib.Layer().tar()  # the empty layer a classic builder repeats (ENV, WORKDIR...)
    base = ib.busybox_layer().tar()
    raws = [base, empty, empty]
    config = ib.image_config(cmd=["sh"])
    config["rootfs"] = {"type": "layers", "diff_ids": [ib.sha256(raw) for raw in raws]}
    config_bytes = json.dumps(config).encode()
    files = {"cfg.json": config_bytes, "base/layer.tar": base, "aaa/layer.tar": empty,
             "manifest.json": json.dumps([{"Config": "cfg.json", "RepoTags": ["t/x:1"],
                                           "Layers": ["base/layer.tar", "aaa/layer.tar", "bbb/layer.tar"]}]).encode()}
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.addfile(second)
    return path


def _link(kind: bytes, target: str, name: str = "bbb/layer.tar") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(("kind", "target"), [(tarfile.SYMTYPE, "../aaa/layer.tar"),
                                               (tarfile.LNKTYPE, "aaa/layer.tar")])
def test_a_repeated_layer_saved_as_a_link_is_read_through_it(tmp_path: Path, kind: bytes, target: str) -> None:
    saved = _saved_with_links(tmp_path / "saved.tar", _link(kind, target))
    image = prepare(f"docker-archive:{saved}", "IfNotPresent", tmp_path / "cache")
    assert image.pulled and (image.rootfs / "bin/busybox").is_file() and image.config.cmd == ("sh",)


@pytest.mark.parametrize(("target", "problem"), [
    ("../../outside/layer.tar", "points outside the archive"),
    ("/etc/passwd", "points outside the archive"),
    ("../ccc/layer.tar", "names no file in the archive"),
    ("layer.tar", "too many levels of links"),  # bbb/layer.tar -> itself
])
def test_links_that_leave_the_archive_dangle_or_loop_are_refused(tmp_path: Path, target: str, problem: str) -> None:
    saved = _saved_with_links(tmp_path / "saved.tar", _link(tarfile.SYMTYPE, target))
    with pytest.raises(ImageError, match=problem):
        prepare(f"docker-archive:{saved}", "IfNotPresent", tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("sha256/*/rootfs"))
