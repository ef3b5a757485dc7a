"""`podline image load | ls | rm` on a store that cannot be trusted or used: one line and exit 2, no traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.imagebuild import busybox_layer, docker_archive, image_config


def _archive(tmp_path: Path) -> Path:
    return docker_archive(tmp_path / "tools.tar", [busybox_layer()], image_config(cmd=["sh"]), repo_tag="t/x:1")


def _one_line_error(done, code: int, problem: str) -> None:  # noqa: ANN001 - a CompletedProcess
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    assert problem in done.stderr, done.stderr


def _every_verb(cli: Cli, archive: Path, problem: str) -> None:
    for args in (("image", "ls"), ("image", "rm", "t/x:1"), ("image", "load", str(archive))):
        _one_line_error(cli(*args, check=False), 2, problem)


def test_a_store_writable_by_others_is_refused_by_every_verb(cli: Cli, tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    cli("image", "load", str(archive))
    store = cli.home / "shared" / "images" / "store"
    store.chmod(0o770)
    _every_verb(cli, archive, f"refusing the image store {store}")
    store.chmod(0o700)
    assert cli("image", "rm", "t/x:1").stdout == 'image "t/x:1" removed\n'


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the store to another user")
def test_a_store_owned_by_another_user_is_refused(cli: Cli, tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    cli("image", "load", str(archive))
    store = cli.home / "shared" / "images" / "store"
    os.chown(store, 65534, 65534)
    _every_verb(cli, archive, f"refusing the image store {store}")


def test_a_file_where_the_store_directory_belongs_is_exit_2(cli: Cli, tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    images = cli.home / "shared" / "images"
    images.parent.mkdir(parents=True)
    images.write_text("not a directory\n")
    _every_verb(cli, archive, str(images))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only directories")
def test_a_shared_directory_this_user_cannot_write_is_exit_2(cli: Cli, tmp_path: Path) -> None:
    shared = cli.home / "shared"
    shared.mkdir(parents=True)
    shared.chmod(0o500)
    try:
        _one_line_error(cli("image", "load", str(_archive(tmp_path)), check=False), 2, "Permission denied")
    finally:
        shared.chmod(0o700)
