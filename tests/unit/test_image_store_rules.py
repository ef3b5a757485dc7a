"""The image store's rules (`podline image load`): what a name may stand for, what is refused, what goes with a
name; and the image cache's clean-up of what killed builders and collections leave. Real archives (built
offline), real prepare() into a real cache; no containers."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest

from podline.images import ImageError, prepare
from podline.images.cache import ImageCache
from podline.images.store import ImageStore, bare_key
from tests import imagebuild as ib


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archives")
    ib.docker_archive(root / "tools.tar", [ib.busybox_layer()], repo_tag="lab/tools:1")
    ib.docker_archive(root / "other.tar", [ib.busybox_layer(), ib.padded_layer(1)], repo_tag="lab/tools:1")
    ib.busybox_image(root / "layout", tag="docker.io/library/tools:1.2")  # as skopeo names it: ':' and '/'
    ib.oci_archive(root / "layout", root / "oci.tar")
    (root / "tools.tar.gz").write_bytes(gzip.compress((root / "tools.tar").read_bytes()))
    return root


@pytest.mark.parametrize(("text", "key"), [
    ("tools", "tools:latest"), ("tools:1.2", "tools:1.2"), ("lab/tools:1", "lab/tools:1"),
    ("localhost/x", None), ("reg.example.org/x:1", None), ("reg:5000/x", None), ("x@sha256:" + "0" * 64, None),
    ("oci:/images/x", None), ("/images/x", None), ("docker://x", None), ("Tools", None),
])
def test_only_plain_names_come_from_the_store(text: str, key: str | None) -> None:
    assert bare_key(text) == key


def test_an_oci_archive_tagged_with_colons_loads_and_runs_even_with_pull_policy_never(archives: Path,
                                                                                      tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert ImageStore(store).load(archives / "oci.tar", "tools:1.2") == ["tools:1.2"]
    image = prepare("tools:1.2", "Never", tmp_path / "cache", store=store)  # loaded: on the node already
    assert image.pulled and (image.rootfs / "bin/busybox").is_file() and image.reference == "tools:1.2"


def test_a_gzipped_docker_save_loads_under_its_own_name(archives: Path, tmp_path: Path) -> None:
    assert ImageStore(tmp_path / "store").load(archives / "tools.tar.gz") == ["lab/tools:1"]
    assert (prepare("lab/tools:1", "IfNotPresent", tmp_path / "cache", store=tmp_path / "store").rootfs
            / "bin/busybox").is_file()


@pytest.mark.parametrize(("repo_tag", "name"), [
    ("docker.io/library/tools:1.2", "tools:1.2"), ("docker.io/lab/tools:1", "lab/tools:1"),
    ("index.docker.io/library/tools:1.2", "tools:1.2"), ("reg.example.org/tools:1", None),
])
def test_a_docker_archive_skopeo_wrote_loads_under_the_name_docker_load_gives(
        tmp_path: Path, repo_tag: str, name: str | None) -> None:
    """skopeo copy … docker-archive:tools.tar:tools:1.2 writes RepoTags docker.io/library/tools:1.2 (helper-71:
    it was refused as carrying no name)."""
    archive = ib.docker_archive(tmp_path / "tools.tar", [ib.busybox_layer()], repo_tag=repo_tag)
    store = ImageStore(tmp_path / "store")
    if name is None:  # a name with a registry never comes from the store: --name is needed
        with pytest.raises(ImageError, match="carries no name"):
            store.load(archive)
    else:
        assert store.load(archive) == [name]


def test_loading_a_name_again_replaces_its_archive_and_the_old_one_goes(archives: Path, tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    store.load(archives / "tools.tar")
    store.load(archives / "other.tar")  # the same name, other content
    assert len(list((tmp_path / "store" / "archives").glob("*.tar"))) == 1
    assert [s.size for s in store.list()] == [(archives / "other.tar").stat().st_size]


def test_refs_json_is_never_trusted_as_a_path(archives: Path, tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    store.load(archives / "tools.tar")
    refs = json.loads((tmp_path / "store" / "refs.json").read_text())
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    refs["evil:1"] = {"format": "dir", "archive": "0" * 64}
    refs["old:1"] = {"reference": "dir:/", "archive": str(victim)}
    refs["path:1"] = {"format": "docker-archive", "archive": "../../victim"}
    (tmp_path / "store" / "refs.json").write_text(json.dumps(refs))
    assert [store.lookup(n) for n in ("evil:1", "old:1", "path:1")] == [None, None, None]
    assert not store.remove("old:1") and victim.read_text() == "keep me\n"
    assert [s.name for s in store.list()] == ["lab/tools:1"]


def test_a_store_others_can_write_is_refused(archives: Path, tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    store.load(archives / "tools.tar")
    os.chmod(tmp_path / "store", 0o777)
    with pytest.raises(ImageError, match="writable by group or others"):
        store.lookup("lab/tools:1")


@pytest.mark.parametrize("repo_tags", [[1, None], "abc", {"a": 1}])
def test_malformed_repo_tags_are_a_clear_refusal(tmp_path: Path, repo_tags: object) -> None:
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tar:
        data = json.dumps([{"Config": "c.json", "RepoTags": repo_tags, "Layers": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ImageError, match="RepoTags is not a list of names"):
        ImageStore(tmp_path / "store").load(archive)
    assert not list((tmp_path / "store" / "archives").iterdir())


def test_a_collection_sweeps_what_killed_builders_and_collections_left(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path / "cache")
    cache.check()
    tmp = cache.root / "tmp"
    (tmp / "gc" / "old").mkdir(parents=True)
    (tmp / "gc" / "old" / "entry").mkdir()
    os.utime(tmp / "gc" / "old", (time.time() - 120, time.time() - 120))
    (tmp / "gc" / "fresh").mkdir()  # a collection at work right now
    (tmp / f"{'a' * 64}.xyz" / "rootfs").mkdir(parents=True)  # a build killed midway (its lock is free)
    (cache.root / "sha256").mkdir(exist_ok=True)
    assert cache.collect(lambda _: (100, 100), high=0, low=0) == []
    assert sorted(p.name for p in tmp.rglob("*")) == ["fresh", "gc"]
