"""`rootfs:PATH` (SPEC's name for a plain directory image) is the same image as `dir:PATH`."""

from __future__ import annotations

from pathlib import Path

import pytest

from podline.images import ImageError, prepare
from podline.images.errors import INVALID_NAME
from podline.images.reference import parse_reference
from podline.plan.pod import default_pull_policy


def test_rootfs_parses_as_a_local_directory() -> None:
    ref = parse_reference("rootfs:/srv/rootfs")
    assert (ref.transport, ref.path, ref.tag) == ("dir", "/srv/rootfs", "")
    assert parse_reference("rootfs:/srv/rootfs:v1").path == "/srv/rootfs:v1", "a directory image has no tag"


@pytest.mark.parametrize("text", ["rootfs:relative", "rootfs:/a/../b"])
def test_bad_rootfs_paths_are_invalid_names(text: str) -> None:
    with pytest.raises(ImageError, match="rootfs:|'..'") as caught:
        parse_reference(text)
    assert caught.value.reason == INVALID_NAME


def test_rootfs_image_is_used_in_place(tmp_path: Path) -> None:
    prepared = prepare(f"rootfs:{tmp_path}", "Always", tmp_path / "cache")
    assert (prepared.rootfs, prepared.digest, prepared.pulled) == (tmp_path, "", False)
    with pytest.raises(ImageError, match="no such rootfs directory"):
        prepare(f"rootfs:{tmp_path}/missing", "IfNotPresent", tmp_path / "cache")


def test_rootfs_images_default_to_if_not_present() -> None:
    assert default_pull_policy("rootfs:/srv/rootfs") == "IfNotPresent"
