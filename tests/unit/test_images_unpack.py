"""The layer unpacker: whiteouts, metadata, and the hostile-tarball refusals (nothing may land outside the rootfs).

Hostile layers are fed through prepare() from a real OCI layout, so the test also proves that a refused
image leaves nothing in the cache, and that a sentinel directory next to the rootfs stays empty.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from podline.images import ImageError, prepare
from podline.images.unpack import LayerApplier
from tests import imagebuild as ib
from tests.imagebuild import Layer


def apply(root: Path, *layers: Layer) -> Path:
    root.mkdir(exist_ok=True)
    applier = LayerApplier(root, "test")
    for i, layer in enumerate(layers):
        applier.apply(io.BytesIO(layer.tar()), f"#{i}")
    applier.finish()
    return root


def test_whiteouts_and_opaque_directories(tmp_path: Path) -> None:
    lower = (Layer().dir("etc").file("etc/keep", b"k").file("etc/gone", b"g").dir("etc/sub").file("etc/sub/x", b"x")
             .dir("opt").file("opt/old1", b"1").dir("opt/olddir").file("opt/olddir/f", b"f")
             .dir("var").dir("var/lib").file("var/lib/a", b"a"))
    upper = (Layer().whiteout("etc/gone").whiteout("etc/sub").file("etc/sub2", b"new")
             .dir("opt").opaque("opt").file("opt/new", b"n").dir("opt/olddir").file("opt/olddir/g", b"g2")
             .whiteout("var/lib/missing"))
    root = apply(tmp_path / "root", lower, upper)
    assert sorted(ib.tree(root)) == sorted([
        "etc", "etc/keep", "etc/sub2", "opt", "opt/new", "opt/olddir", "opt/olddir/g", "var", "var/lib", "var/lib/a"])
    assert not any(name.startswith(".wh.") for name in os.listdir(root / "opt"))


def test_opaque_keeps_entries_of_its_own_layer_written_before_the_marker(tmp_path: Path) -> None:
    lower = Layer().dir("d").file("d/lower", b"l").dir("d/both").file("d/both/lower", b"l")
    upper = Layer().dir("d").file("d/mine", b"m").file("d/both/mine", b"m").opaque("d")
    root = apply(tmp_path / "root", lower, upper)
    assert sorted(ib.tree(root)) == ["d", "d/both", "d/both/mine", "d/mine"]


def test_replacing_across_layers(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target").write_text("host file")
    lower = Layer().dir("a").file("a/f", b"1").symlink("link", str(outside / "target")).file("dir-to-be", b"f")
    upper = Layer().file("a", b"now a file").file("link", b"replaces the link").dir("dir-to-be").file("dir-to-be/x")
    root = apply(tmp_path / "root", lower, upper)
    assert (root / "a").read_bytes() == b"now a file"
    assert not (root / "link").is_symlink() and (root / "link").read_bytes() == b"replaces the link"
    assert (outside / "target").read_text() == "host file"
    assert (root / "dir-to-be" / "x").exists()


def test_metadata_modes_links_mtimes_and_setuid_stripped(tmp_path: Path) -> None:
    layer = (Layer().dir("bin", 0o555).file("bin/tool", b"#!", 0o4755).file("bin/grp", b"", 0o2711)
             .file("bin/ro", b"ro", 0o444).hardlink("bin/tool2", "bin/tool").symlink("bin/sh", "/bin/busybox")
             .symlink("bin/rel", "../bin/tool").dir("tmp", 0o1777))
    root = apply(tmp_path / "root", layer)
    assert stat.S_IMODE((root / "bin/tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "bin/grp").stat().st_mode) == 0o711
    assert stat.S_IMODE((root / "bin/ro").stat().st_mode) == 0o444
    assert stat.S_IMODE((root / "bin").stat().st_mode) == 0o555
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    assert (root / "bin/tool").stat().st_ino == (root / "bin/tool2").stat().st_ino
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    assert os.readlink(root / "bin/rel") == "../bin/tool"
    assert (root / "bin/tool").stat().st_mtime == ib.MTIME
    assert (root / "bin").stat().st_mtime == ib.MTIME
    assert os.lstat(root / "bin/sh").st_mtime == ib.MTIME


def _special(name: str, kind: bytes) -> Layer:
    return Layer().special(name, kind)


def _raw(name: str, *, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> Layer:
    """A layer with one entry whose name tarfile would otherwise normalise (absolute names)."""
    layer = Layer()
    info = tarfile.TarInfo("placeholder")
    info.type, info.linkname, info.mtime = kind, linkname, ib.MTIME
    info.name = name
    layer.entries.append((info, b"" if kind == tarfile.REGTYPE else None))
    return layer


def hostile_layers(outside: Path) -> dict[str, list[Layer]]:
    """Each case: the layers of an image that must be refused, with what it tries to do."""
    rel = os.path.relpath(outside, "/")
    return {
        "dotdot": [Layer().file("../outside-pwned", b"x")],
        "dotdot-deep": [Layer().dir("a").file("a/../../outside/pwned", b"x")],
        "absolute": [_raw(str(outside / "pwned"))],
        "absolute-dir": [_raw(str(outside / "pwdir"), kind=tarfile.DIRTYPE)],
        "through-symlink": [Layer().symlink("esc", str(outside)).file("esc/pwned", b"x")],
        "through-symlink-later-layer": [Layer().symlink("esc", str(outside)), Layer().file("esc/pwned", b"x")],
        "through-symlink-dir-entry": [Layer().symlink("esc", str(outside)).dir("esc/sub")],
        "through-nested-symlink": [Layer().dir("a").symlink("a/b", str(outside)).file("a/b/c", b"x")],
        "hardlink-dotdot": [Layer().hardlink("hl", "../outside/secret")],
        "hardlink-absolute": [Layer().hardlink("hl", str(outside / "secret"))],
        "hardlink-through-symlink": [Layer().symlink("esc", str(outside)).hardlink("hl", "esc/secret")],
        "hardlink-to-directory": [Layer().dir("d").hardlink("hl", "d")],
        "symlink-climbs": [Layer().symlink("up", "../outside")],
        "symlink-climbs-deep": [Layer().dir("a").symlink("a/up", "../../" + rel)],
        "symlink-climbs-dots": [Layer().dir("a").symlink("a/up", "b/../../..")],
        "char-device": [_special("dev/null", tarfile.CHRTYPE)],
        "block-device": [_special("sda", tarfile.BLKTYPE)],
        "fifo": [_special("fifo", tarfile.FIFOTYPE)],
        "whiteout-dotdot": [Layer().file("a/.wh..", b"")],
    }


@pytest.mark.parametrize("case", sorted(hostile_layers(Path("/x"))))
def test_hostile_layers_are_refused_and_leave_nothing(tmp_path: Path, case: str) -> None:
    outside = tmp_path / "outside"  # the sentinel: next to the rootfs and the cache
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    layout, cache = tmp_path / "layout", tmp_path / "cache"
    # a harmless first layer, so refusals happen mid-image with real content already unpacked
    layers = [ib.Layer().dir("etc").file("etc/ok", b"fine"), *hostile_layers(outside)[case]]
    ib.add_image(layout, layers, tag="evil")
    with pytest.raises(ImageError) as caught:
        prepare(f"oci:{layout}:evil", "IfNotPresent", cache)
    assert not caught.value.transient
    assert "\n" not in str(caught.value)
    assert f"oci:{layout}:evil" in str(caught.value)
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_text() == "host secret"
    assert not (tmp_path / "outside-pwned").exists()
    assert not list((cache / "sha256").glob("*")) if (cache / "sha256").exists() else True
    assert not list((cache / "tmp").iterdir())


def test_absolute_symlinks_are_allowed_and_left_for_the_runtime(tmp_path: Path) -> None:
    root = apply(tmp_path / "root", Layer().dir("bin").symlink("bin/sh", "/bin/busybox").symlink("etc", "/nonexistent"))
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    assert os.readlink(root / "etc") == "/nonexistent"


def test_ownership_applied_when_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("ownership is applied only when unpacking as root")
    layer = Layer().file("owned", b"x")
    layer.entries[0][0].uid, layer.entries[0][0].gid = 1234, 4321
    root = apply(tmp_path / "root", layer)
    assert ((root / "owned").stat().st_uid, (root / "owned").stat().st_gid) == (1234, 4321)


LIMIT = 8 << 20


def _refused_for_size(tmp_path: Path, layers: list, monkeypatch: pytest.MonkeyPatch) -> ImageError:
    layout, cache = tmp_path / "layout", tmp_path / "cache"
    ib.add_image(layout, [ib.Layer().file("ok", b"fine"), *layers], tag="big")
    monkeypatch.setenv("PODLINE_IMAGE_MAX_BYTES", str(LIMIT))
    with pytest.raises(ImageError) as caught:
        prepare(f"oci:{layout}:big", "IfNotPresent", cache)
    message = str(caught.value)
    assert message.startswith(f"oci:{layout}:big: layer ") and "\n" not in message
    assert f"unpacks to more than {LIMIT} bytes" in message and "PODLINE_IMAGE_MAX_BYTES" in message
    assert not caught.value.transient
    assert not (cache / "sha256").exists() and not list((cache / "tmp").iterdir())
    return caught.value


def test_a_gzip_bomb_stops_at_the_image_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = Layer().file("zeros", bytes(64 << 20))  # 64 MiB of zeros: ~64 KiB gzipped
    _refused_for_size(tmp_path / "file", [bomb], monkeypatch)
    trailing = Layer().file("small", b"x").tar() + bytes(64 << 20)  # after the tar's end: only the drain sees it
    _refused_for_size(tmp_path / "trailing", [trailing], monkeypatch)
    across = [Layer().file(f"part{i}", os.urandom(3 << 20)) for i in range(3)]  # 9 MiB in 3 layers of 3
    _refused_for_size(tmp_path / "across", across, monkeypatch)


def test_a_sparse_file_counts_its_full_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not shutil.which("tar"):
        pytest.skip("GNU tar makes the sparse member")
    sparse = tmp_path / "src" / "sparse"
    sparse.parent.mkdir()
    with open(sparse, "wb") as f:
        f.truncate(64 << 20)
        f.write(b"head")
    raw = subprocess.run(["tar", "--sparse", "--format=gnu", "-C", str(sparse.parent), "-cf", "-", "sparse"],
                         check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        if not tar.getmembers()[0].issparse():
            pytest.skip("tar did not write a sparse member")
    assert len(raw) < 1 << 20
    _refused_for_size(tmp_path, [raw], monkeypatch)


def test_images_under_the_limit_unpack_and_the_limit_is_checked(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    layout = tmp_path / "layout"
    ib.add_image(layout, [Layer().file("a", os.urandom(3 << 20)), Layer().file("b", os.urandom(3 << 20))], tag="ok")
    monkeypatch.setenv("PODLINE_IMAGE_MAX_BYTES", str(LIMIT))
    assert (prepare(f"oci:{layout}:ok", "IfNotPresent", tmp_path / "cache").rootfs / "b").stat().st_size == 3 << 20
    for bad in ("lots", "0", "-5"):
        monkeypatch.setenv("PODLINE_IMAGE_MAX_BYTES", bad)
        with pytest.raises(ImageError, match=f"PODLINE_IMAGE_MAX_BYTES='{bad}' is not a positive number of bytes"):
            prepare(f"oci:{layout}:ok", "IfNotPresent", tmp_path / "other")
