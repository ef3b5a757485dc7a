"""Build container images offline for tests and benchmarks: OCI layouts, oci-/docker-archives, hostile layers.

Nothing is downloaded: the busybox image's single layer holds this machine's Debian `busybox-static`
binary plus applet symlinks; other layers are made from bytes in memory. Everything is deterministic
(fixed mtimes, gzip without timestamps), so the same call gives the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import random
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "echo", "cat", "ls", "env", "sleep", "id", "pwd", "test", "true", "false", "wc", "mkdir", "touch",
           "rm")
MTIME = 1_700_000_000
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def machine_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- layers ---------------------------------------------------------------------------------------------
@dataclass
class Layer:
    """A layer being built: add entries in order, then `tar()` (uncompressed bytes)."""

    entries: list[tuple[tarfile.TarInfo, bytes | None]] = field(default_factory=list)

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, MTIME
        return info

    def dir(self, name: str, mode: int = 0o755) -> Layer:
        self.entries.append((self._info(name, tarfile.DIRTYPE, mode), None))
        return self

    def file(self, name: str, data: bytes = b"", mode: int = 0o644) -> Layer:
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.entries.append((info, data))
        return self

    def symlink(self, name: str, target: str) -> Layer:
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.entries.append((info, None))
        return self

    def hardlink(self, name: str, target: str) -> Layer:
        info = self._info(name, tarfile.LNKTYPE, 0o644)
        info.linkname = target
        self.entries.append((info, None))
        return self

    def special(self, name: str, kind: bytes) -> Layer:
        """A device node or FIFO entry (tarfile.CHRTYPE, BLKTYPE, FIFOTYPE)."""
        self.entries.append((self._info(name, kind, 0o644), None))
        return self

    def whiteout(self, path: str) -> Layer:
        parent, _, base = path.rpartition("/")
        return self.file(f"{parent}/.wh.{base}" if parent else f".wh.{base}")

    def opaque(self, directory: str) -> Layer:
        return self.file(f"{directory}/.wh..wh..opq")

    def tar(self) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in self.entries:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return out.getvalue()


def busybox_layer() -> Layer:
    layer = Layer().dir("bin").dir("tmp", 0o1777).dir("etc").dir("proc", 0o555).dir("dev").dir("sys", 0o555)
    layer.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    for applet in APPLETS:
        layer.symlink(f"bin/{applet}", "/bin/busybox")
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
    layer.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    return layer


def padded_layer(mib: int, *, seed: int = 7, files: int = 0, name: str = "pad") -> Layer:
    """About `mib` MiB: `files` small files (a few KiB each) plus two big half-compressible files."""
    rng = random.Random(seed)
    layer = Layer().dir(name)
    small_total = 0
    for i in range(files):
        if i % 100 == 0:
            layer.dir(f"{name}/d{i // 100}")
        data = rng.randbytes(rng.randint(256, 4096)) if i % 2 else (b"podline %d\n" % i) * rng.randint(20, 400)
        small_total += len(data)
        layer.file(f"{name}/d{i // 100}/f{i}", data)
    big = max(0, mib * (1 << 20) - small_total)
    for part in range(2):
        size = big // 2
        # half random, half repetitive: gzip shrinks it like typical binaries and data
        chunk = rng.randbytes(size // 2) + bytes(size - size // 2)
        layer.file(f"{name}/big{part}.bin", chunk)
    return layer


# --- images ---------------------------------------------------------------------------------------------
def image_config(*, entrypoint=None, cmd=None, env=None, working_dir="", user="", diff_ids=()) -> dict:
    config: dict = {}
    if entrypoint is not None:
        config["Entrypoint"] = list(entrypoint)
    if cmd is not None:
        config["Cmd"] = list(cmd)
    config["Env"] = list(env) if env is not None else ["PATH=/bin"]
    if working_dir:
        config["WorkingDir"] = working_dir
    if user:
        config["User"] = user
    return {
        "architecture": machine_arch(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created_by": "tests/imagebuild.py"}],
    }


def _blob(layout: Path, data: bytes) -> str:
    digest = sha256(data)
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return digest


def add_image(layout: Path, layers: list[Layer | bytes], config: dict | None = None, *, tag: str = "latest",
              compress: bool = True, annotations: dict | None = None) -> str:
    """Add an image to the OCI layout at `layout` (created if missing) under `tag`; returns its manifest digest."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    config = dict(config or image_config())
    descriptors, diff_ids = [], []
    for layer in layers:
        raw = layer.tar() if isinstance(layer, Layer) else layer
        diff_ids.append(sha256(raw))
        data = gzip.compress(raw, compresslevel=6, mtime=0) if compress else raw
        media = OCI_LAYER_GZIP if compress else OCI_LAYER_TAR
        descriptors.append({"mediaType": media, "digest": _blob(layout, data), "size": len(data)})
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": _blob(layout, config_bytes), "size": len(config_bytes)},
        "layers": descriptors,
    }
    if annotations:
        manifest["annotations"] = annotations
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    digest = _blob(layout, manifest_bytes)
    _index_add(layout, {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest_bytes)}, tag)
    return digest


def _index_add(layout: Path, descriptor: dict, tag: str) -> None:
    index_path = layout / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"schemaVersion": 2, "manifests": []}
    key = "org.opencontainers.image.ref.name"
    index["manifests"] = [m for m in index["manifests"] if m.get("annotations", {}).get(key) != tag]
    index["manifests"].append(dict(descriptor, annotations={key: tag}))
    index_path.write_text(json.dumps(index, sort_keys=True))


def add_multiarch(layout: Path, per_arch: dict[str, str], *, tag: str) -> str:
    """Tag an image index in `layout` that points at existing manifests, one per architecture."""
    manifests = []
    for arch, digest in per_arch.items():
        size = (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).stat().st_size
        manifests.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
                          "platform": {"os": "linux", "architecture": arch}})
    data = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}, sort_keys=True).encode()
    digest = _blob(layout, data)
    _index_add(layout, {"mediaType": OCI_INDEX, "digest": digest, "size": len(data)}, tag)
    return digest


def busybox_image(layout: Path, *, tag: str = "latest", entrypoint=None, cmd=("sh",), env=None,
                  working_dir: str = "", extra: list[Layer] | None = None, compress: bool = True) -> str:
    """The busybox test image in an OCI layout; returns its manifest digest."""
    env = env if env is not None else ["PATH=/bin", "PODLINE_IMAGE=busybox"]
    config = image_config(entrypoint=entrypoint, cmd=cmd, env=env, working_dir=working_dir)
    return add_image(layout, [busybox_layer(), *(extra or [])], config, tag=tag, compress=compress)


def oci_archive(layout: Path, archive: Path) -> Path:
    """Tar an OCI layout into an oci-archive file (as `skopeo copy ... oci-archive:` writes it)."""
    with tarfile.open(archive, "w") as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(layout / name, arcname=name)
    return archive


def docker_archive(archive: Path, layers: list[Layer], config: dict | None = None, *,
                   repo_tag: str = "podline-test/busybox:latest") -> Path:
    """Write a `docker save` style archive: manifest.json, <config>.json, <id>/layer.tar (uncompressed)."""
    raws = [layer.tar() for layer in layers]
    config = dict(config or image_config())
    config["rootfs"] = {"type": "layers", "diff_ids": [sha256(raw) for raw in raws]}
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = sha256(config_bytes).split(":", 1)[1] + ".json"
    files = {config_name: config_bytes}
    layer_names = []
    for raw in raws:
        name = f"{sha256(raw).split(':', 1)[1]}/layer.tar"
        files[name] = raw
        layer_names.append(name)
    entry = {"Config": config_name, "RepoTags": [repo_tag], "Layers": layer_names}
    files["manifest.json"] = json.dumps([entry]).encode()
    with tarfile.open(archive, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), MTIME
            tar.addfile(info, io.BytesIO(data))
    return archive


def copy_layout(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, dirs_exist_ok=True)
    return dest


def layout_blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def manifest_of(layout: Path, digest: str) -> dict:
    return json.loads(layout_blob(layout, digest).read_bytes())


def tree(root: Path) -> dict[str, str]:
    """A comparable listing of a rootfs: relative path -> 'dir', 'link:<target>' or 'file:<content hash>'."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = str(full.relative_to(root))
            if full.is_symlink():
                out[rel] = "link:" + os.readlink(full)
            elif full.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = "file:" + hashlib.sha256(full.read_bytes()).hexdigest()[:12]
    return out
