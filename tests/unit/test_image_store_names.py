"""A loaded image is found by every spelling of its Docker Hub name (helper-79: stored as `r3box:1.0`, a pod
naming `docker.io/library/r3box:1.0` went to Docker Hub, even with imagePullPolicy Never)."""

from __future__ import annotations

import pytest

from podline.images.store import bare_key


@pytest.mark.parametrize("name", ["r3box:1.0", "docker.io/library/r3box:1.0", "library/r3box:1.0",
                                  "index.docker.io/library/r3box:1.0"])
def test_docker_hub_spellings_are_one_stored_name(name: str) -> None:
    assert bare_key(name) == "r3box:1.0"


@pytest.mark.parametrize("name", ["127.0.0.1:5000/r3box:1.0", "quay.io/a/r3box:1.0", "r3box@sha256:" + "a" * 64])
def test_other_registries_and_digests_never_come_from_the_store(name: str) -> None:
    assert bare_key(name) is None


def test_an_organisation_on_docker_hub_keeps_its_path() -> None:
    assert bare_key("docker.io/org/tool:2") == bare_key("org/tool:2") == "org/tool:2"
