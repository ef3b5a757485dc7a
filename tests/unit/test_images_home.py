"""HOME for containers that run an image's rootfs (bwrap), as runc/crun set it from the image's /etc/passwd."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from podline.runtime.launch import image_home, read_in_root, with_image_home

PASSWD = b"root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nnohome:x:1001:1001:::/bin/sh\n"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_bytes(PASSWD)
    return root


@pytest.mark.parametrize(("uid", "home"), [(0, "/root"), (1000, "/home/alice"), (1001, "/"), (4242, "/")])
def test_home_is_the_users_passwd_entry_else_root(rootfs: Path, uid: int, home: str) -> None:
    assert image_home(rootfs, uid) == home


def test_image_or_manifest_home_wins(rootfs: Path) -> None:
    assert with_image_home({"HOME": "/work"}, rootfs, 0) == {"HOME": "/work"}
    assert with_image_home({"A": "1"}, rootfs, 1000) == {"A": "1", "HOME": "/home/alice"}
    assert with_image_home({}, rootfs)["HOME"] == image_home(rootfs, os.getuid())


def test_no_passwd_means_slash(tmp_path: Path) -> None:
    assert image_home(tmp_path, 0) == "/"


def test_links_inside_the_image_resolve_against_its_root(tmp_path: Path, rootfs: Path) -> None:
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "real").mkdir()
    (rootfs / "real" / "passwd").write_bytes(PASSWD)
    (rootfs / "etc" / "passwd").symlink_to("/real/../real/passwd")
    assert image_home(rootfs, 1000) == "/home/alice"
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to("../../../../../../real/passwd")  # '..' stops at the image's root
    assert image_home(rootfs, 1000) == "/home/alice"


def test_links_never_lead_out_of_the_rootfs(tmp_path: Path) -> None:
    outside = tmp_path / "host-etc"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"root:x:0:0:root:/host-secret:/bin/sh\n")
    root = tmp_path / "rootfs"
    root.mkdir()
    (root / "etc").symlink_to(outside)  # absolute: means <rootfs>/<outside> inside the image, which is missing
    assert image_home(root, 0) == "/"
    (root / "etc").unlink()
    (root / "etc").symlink_to("../host-etc")  # '..' at the image's root stays there
    assert image_home(root, 0) == "/"
    (root / "etc").unlink()
    (root / "etc").mkdir()
    (root / "etc" / "passwd").symlink_to("passwd")
    assert read_in_root(root, "/etc/passwd", 100) is None  # a loop ends, unread
    (root / "etc" / "passwd").unlink()
    os.mkfifo(root / "etc" / "passwd")
    assert read_in_root(root, "/etc/passwd", 100) is None  # not a regular file: not read (no hang)
