"""prepare() on local images: the cache (hits, one unpack under contention, crash safety), policies, digests.

Contention and crash tests use real separate processes: several `python -c prepare(...)` started together
(as Slurm array tasks on one node would be), and one that is SIGKILLed in the middle of unpacking.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from podline.images import NEVER_PULL, ImageError, prepare
from tests import imagebuild as ib

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "layout"
    ib.busybox_image(path, tag="v1", entrypoint=["/bin/sh", "-c"], cmd=["echo hi"], working_dir="/work",
                     env=["PATH=/bin", "A=1"])
    ib.add_image(path, [ib.busybox_layer(), ib.padded_layer(6, files=300)], tag="big")
    return path


def test_layout_pull_then_cache_hit(layout: Path, tmp_path: Path) -> None:
    first = prepare(f"oci:{layout}:v1", "IfNotPresent", tmp_path)
    assert first.pulled and first.digest.startswith("sha256:") and first.seconds > 0
    assert (first.rootfs / "bin/busybox").is_file() and os.readlink(first.rootfs / "bin/sh") == "/bin/busybox"
    assert first.config.entrypoint == ("/bin/sh", "-c") and first.config.cmd == ("echo hi",)
    assert first.config.env == ("PATH=/bin", "A=1") and first.config.working_dir == "/work"
    assert first.rootfs == tmp_path / "sha256" / first.digest.split(":")[1] / "rootfs"
    for policy in ("IfNotPresent", "Always", "Never"):
        again = prepare(f"oci:{layout}:v1", policy, tmp_path)
        assert (again.pulled, again.digest, again.rootfs) == (False, first.digest, first.rootfs)


def test_never_policy_needs_the_image_cached(layout: Path, tmp_path: Path) -> None:
    with pytest.raises(ImageError) as caught:
        prepare(f"oci:{layout}:v1", "Never", tmp_path)
    assert caught.value.reason == NEVER_PULL and not caught.value.transient
    with pytest.raises(ImageError, match="unknown imagePullPolicy"):
        prepare(f"oci:{layout}:v1", "Sometimes", tmp_path)


def test_archives_share_the_cache_with_the_layout(layout: Path, tmp_path: Path) -> None:
    archive = ib.oci_archive(layout, tmp_path / "image.tar")
    from_layout = prepare(f"oci:{layout}:v1", "IfNotPresent", tmp_path / "cache")
    from_archive = prepare(f"oci-archive:{archive}:v1", "IfNotPresent", tmp_path / "cache")
    assert from_archive.digest == from_layout.digest and not from_archive.pulled
    saved = ib.docker_archive(tmp_path / "saved.tar", [ib.busybox_layer(), ib.Layer().file("extra", b"x")],
                              ib.image_config(cmd=["sh"], working_dir="/tmp"))
    docker = prepare(f"docker-archive:{saved}", "IfNotPresent", tmp_path / "cache")
    assert docker.pulled and (docker.rootfs / "bin/busybox").is_file() and (docker.rootfs / "extra").is_file()
    assert docker.config.cmd == ("sh",) and docker.config.working_dir == "/tmp"
    assert prepare(f"docker-archive:{saved}", "IfNotPresent", tmp_path / "cache").digest == docker.digest


def test_rootfs_directory_is_used_in_place(tmp_path: Path) -> None:
    prepared = prepare(str(tmp_path), "Never", tmp_path / "cache")
    assert (prepared.rootfs, prepared.digest, prepared.pulled) == (tmp_path, "", False)
    assert prepare(f"dir:{tmp_path}", "Always", tmp_path / "cache").rootfs == tmp_path
    with pytest.raises(ImageError, match="no such rootfs directory"):
        prepare(f"dir:{tmp_path}/missing", "IfNotPresent", tmp_path / "cache")


def test_multi_arch_index_picks_this_machine(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    mine = ib.add_image(layout, [ib.Layer().file("arch", ib.machine_arch().encode())], tag="m1")
    other = ib.add_image(layout, [ib.Layer().file("arch", b"s390x")], tag="m2")
    ib.add_multiarch(layout, {"s390x": other, ib.machine_arch(): mine}, tag="multi")
    prepared = prepare(f"oci:{layout}:multi", "IfNotPresent", tmp_path / "cache")
    assert prepared.digest == mine and (prepared.rootfs / "arch").read_text() == ib.machine_arch()
    ib.add_multiarch(layout, {"s390x": other}, tag="foreign")
    with pytest.raises(ImageError, match=r"no linux/\w+ image in the index \(it has: linux/s390x\)"):
        prepare(f"oci:{layout}:foreign", "IfNotPresent", tmp_path / "cache")


def test_digest_mismatch_is_refused_and_leaves_nothing(layout: Path, tmp_path: Path) -> None:
    bad = ib.copy_layout(layout, tmp_path / "bad")
    manifest = ib.manifest_of(bad, json.loads((bad / "index.json").read_text())["manifests"][0]["digest"])
    blob = ib.layout_blob(bad, manifest["layers"][0]["digest"])
    data = bytearray(gzip.decompress(blob.read_bytes()))
    data[-2000] ^= 0xFF  # corrupt the content, keep a valid gzip stream
    blob.write_bytes(gzip.compress(bytes(data), mtime=0))
    with pytest.raises(ImageError, match="digest mismatch") as caught:
        prepare(f"oci:{bad}:v1", "IfNotPresent", tmp_path / "cache")
    assert not caught.value.transient
    assert not list((tmp_path / "cache" / "tmp").iterdir()) and not (tmp_path / "cache" / "sha256").exists()
    config = ib.layout_blob(bad, manifest["config"]["digest"])
    config.write_text(config.read_text().replace("echo hi", "echo HI"))
    with pytest.raises(ImageError, match="digest mismatch"):
        prepare(f"oci:{bad}:v1", "IfNotPresent", tmp_path / "cache")


def test_zstd_layers_are_a_clear_error(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    ib.add_image(layout, [ib.Layer().file("x")], tag="z")
    index = json.loads((layout / "index.json").read_text())
    manifest = ib.manifest_of(layout, index["manifests"][0]["digest"])
    fake = b"\x28\xb5\x2f\xfd" + bytes(100)
    manifest["layers"][0] = {"mediaType": ib.OCI_LAYER_GZIP, "digest": ib.sha256(fake), "size": len(fake)}
    ib.layout_blob(layout, ib.sha256(fake)).write_bytes(fake)
    raw = json.dumps(manifest).encode()
    ib.layout_blob(layout, ib.sha256(raw)).write_bytes(raw)
    index["manifests"][0].update(digest=ib.sha256(raw), size=len(raw))
    (layout / "index.json").write_text(json.dumps(index))
    with pytest.raises(ImageError, match="zstd-compressed layers are not supported"):
        prepare(f"oci:{layout}:z", "IfNotPresent", tmp_path / "cache")


def test_threads_share_one_unpack(layout: Path, tmp_path: Path) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: prepare(f"oci:{layout}:big", "IfNotPresent", tmp_path), range(4)))
    assert sorted(r.pulled for r in results) == [False, False, False, True]
    assert len({r.rootfs for r in results}) == 1 and (results[0].rootfs / "pad/big1.bin").is_file()


PREPARE_SCRIPT = textwrap.dedent("""
    import sys, time, os
    from pathlib import Path
    from podline.images import prepare
    start_flag = Path(sys.argv[3])
    while not start_flag.exists():
        time.sleep(0.005)
    image = prepare(sys.argv[1], "IfNotPresent", Path(sys.argv[2]))
    assert (image.rootfs / "pad" / "big1.bin").stat().st_size > 0
    print(image.pulled, image.digest)
""")


def test_processes_share_one_unpack(layout: Path, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", PREPARE_SCRIPT, f"oci:{layout}:big", str(tmp_path / "cache"),
                               str(flag)], stdout=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    time.sleep(0.3)  # let every interpreter start and wait at the flag
    flag.touch()
    outputs = [p.communicate(timeout=60)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(o[0] for o in outputs) == ["False", "False", "False", "True"]
    assert len({o[1] for o in outputs}) == 1


CRASH_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from podline.images import unpack, prepare
    written = 0
    original = unpack.LayerApplier._write_file
    def write_then_die(self, *args):
        global written
        original(self, *args)
        written += 1
        if written == 50:
            os.kill(os.getpid(), signal.SIGKILL)
    unpack.LayerApplier._write_file = write_then_die
    prepare(sys.argv[1], "IfNotPresent", Path(sys.argv[2]))
""")


def test_crash_mid_unpack_leaves_no_half_image(layout: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, f"oci:{layout}:big", str(cache)], env=env)
    assert proc.returncode == -9
    assert not (cache / "sha256").exists()  # no entry, not even an empty one
    assert len(list((cache / "tmp").iterdir())) == 1  # the dead builder's work, unreachable by readers
    with pytest.raises(ImageError) as caught:
        prepare(f"oci:{layout}:big", "Never", cache)
    assert caught.value.reason == NEVER_PULL
    image = prepare(f"oci:{layout}:big", "IfNotPresent", cache)
    assert image.pulled and (image.rootfs / "pad/big1.bin").is_file()
    assert not list((cache / "tmp").iterdir())  # cleaned by the next builder, under the lock


def _plant(layout: Path, tmp_path: Path, hostile: Path) -> tuple[str, str]:
    """Fill `hostile` as another user would: the real image's digest holding a marked rootfs, and a refs/
    record sending a registry tag to it. Returns (the digest, the registry reference)."""
    good = prepare(f"oci:{layout}:v1", "IfNotPresent", tmp_path / "good")
    hostile.mkdir()
    entry = hostile / "sha256" / good.digest.split(":")[1]
    entry.mkdir(parents=True)
    (entry / "rootfs").mkdir()
    (entry / "rootfs" / "PLANTED").write_text("attacker")
    (entry / "config.json").write_bytes((good.rootfs.parent / "config.json").read_bytes())
    (entry / "manifest.json").write_bytes((good.rootfs.parent / "manifest.json").read_bytes())
    reference = "127.0.0.1:9/victim/app:1"  # nothing listens there: only the cache can answer
    name = hashlib.sha256(reference.encode()).hexdigest() + ".json"
    (hostile / "refs").mkdir()
    (hostile / "refs" / name).write_text(json.dumps({"reference": reference, "top": good.digest,
                                                     "digest": good.digest}))
    return good.digest, reference


def _refused(layout: Path, cache: Path, reference: str, problem: str) -> None:
    for image, policy in ((f"oci:{layout}:v1", "Never"), (f"oci:{layout}:v1", "IfNotPresent"),
                          (reference, "IfNotPresent"), (reference, "Never")):
        with pytest.raises(ImageError) as caught:
            prepare(image, policy, cache)
        message = str(caught.value)
        assert f"refusing the image cache {cache}: it {problem}" in message and "\n" not in message
        assert not caught.value.transient


def test_cache_writable_by_others_is_refused(layout: Path, tmp_path: Path) -> None:
    hostile = tmp_path / "hostile"
    _, reference = _plant(layout, tmp_path, hostile)
    hostile.chmod(0o777)
    _refused(layout, hostile, reference, "is writable by group or others (mode 0777)")
    hostile.chmod(0o775)
    _refused(layout, hostile, reference, "is writable by group or others (mode 0775)")
    assert sorted(os.listdir(hostile)) == ["refs", "sha256"]  # nothing written there either
    hostile.chmod(0o755)  # ours and private again: trusted (what it holds is then the user's own doing)
    assert (prepare(f"oci:{layout}:v1", "Never", hostile).rootfs / "PLANTED").is_file()
    assert (prepare(reference, "IfNotPresent", hostile).rootfs / "PLANTED").is_file()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown a directory to another uid")
def test_cache_owned_by_another_user_is_refused(layout: Path, tmp_path: Path) -> None:
    hostile = tmp_path / "hostile"
    _, reference = _plant(layout, tmp_path, hostile)
    hostile.chmod(0o700)
    os.chown(hostile, 65534, 65534)
    _refused(layout, hostile, reference, f"is owned by uid 65534, not by this user (uid {os.getuid()})")


def test_cache_that_is_a_symlink_or_a_file_is_refused(layout: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    _, reference = _plant(layout, tmp_path, target)
    link = tmp_path / "link"
    link.symlink_to(target)
    _refused(layout, link, reference, "is a symlink")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    _refused(layout, dangling, reference, "is a symlink")
    assert not (tmp_path / "nowhere").exists()
    plain = tmp_path / "plain"
    plain.write_text("")
    _refused(layout, plain, reference, "is not a directory")


def test_cache_is_created_private(layout: Path, tmp_path: Path) -> None:
    cache = tmp_path / "deep" / "cache"
    old = os.umask(0)
    try:
        image = prepare(f"oci:{layout}:v1", "IfNotPresent", cache)
    finally:
        os.umask(old)
    for path in (cache, cache / "sha256", cache / "locks", cache / "tmp"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    lock = cache / "locks" / (image.digest.split(":")[1] + ".lock")
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600


def test_layout_blobs_read_whole_are_capped(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    config = dict(ib.image_config(cmd=["sh"]), pad="x" * (17 << 20))
    ib.add_image(layout, [ib.Layer().file("f", b"x")], config, tag="declared")
    with pytest.raises(ImageError, match="its descriptor says .* more than the 16777216 a config or manifest may"):
        prepare(f"oci:{layout}:declared", "IfNotPresent", tmp_path / "cache")
    index = json.loads((layout / "index.json").read_text())
    manifest = ib.manifest_of(layout, index["manifests"][0]["digest"])
    del manifest["config"]["size"]
    raw = json.dumps(manifest).encode()
    ib.layout_blob(layout, ib.sha256(raw)).write_bytes(raw)
    index["manifests"].append({"mediaType": ib.OCI_MANIFEST, "digest": ib.sha256(raw),
                               "annotations": {"org.opencontainers.image.ref.name": "nosize"}})  # no size either
    (layout / "index.json").write_text(json.dumps(index))
    with pytest.raises(ImageError) as caught:
        prepare(f"oci:{layout}:nosize", "IfNotPresent", tmp_path / "cache")
    assert str(caught.value) == (f"oci:{layout}:nosize: refusing blob {manifest['config']['digest']}: larger than"
                                 " 16777216 bytes (no size in its descriptor; the most read whole)")
    assert not (tmp_path / "cache" / "sha256").exists()
