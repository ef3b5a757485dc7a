"""Read OCI / Docker v2 manifests and indexes: pick this machine's platform, list the layers, check digests.

Shared by the registry client and the local layout/archive readers so both treat media types, multi-arch
indexes and digest checks the same way.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from typing import Any

from .errors import ImageError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))
REF_NAME = "org.opencontainers.image.ref.name"
MAX_MANIFEST_BYTES = 4 << 20  # what registries accept; a manifest or index is read whole
MAX_METADATA_BYTES = 16 << 20  # a config (or manifest) blob read whole, when its descriptor has no size


@dataclass(frozen=True)
class Blob:
    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A single-platform image manifest, as resolved from a tag, digest, index or archive."""

    digest: str  # of this manifest (the cache key)
    top_digest: str  # what the reference resolved to first (an index's digest for multi-arch images)
    config: Blob
    layers: tuple[Blob, ...]
    raw: bytes


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(data: bytes, expected: str, what: str) -> None:
    if not expected.startswith("sha256:"):
        raise ImageError(f"{what}: unsupported digest algorithm in {expected!r} (only sha256)")
    actual = sha256_of(data)
    if actual != expected:
        raise ImageError(f"{what}: digest mismatch: expected {expected}, got {actual}")


def machine_platform() -> tuple[str, str]:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return "linux", arch


def load(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ImageError(f"{what}: manifest is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{what}: manifest is not a JSON object")
    return doc


def media_type(doc: dict[str, Any], header_type: str = "", what: str = "image") -> str:
    kind = doc.get("mediaType") or header_type.split(";")[0].strip()
    if not kind:  # OCI allows omitting it: an index has "manifests", a manifest has "layers"
        kind = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if doc.get("schemaVersion") == 1 or "distribution.manifest.v1" in kind:
        raise ImageError(f"{what}: Docker schema 1 manifests are not supported")
    return kind


def is_index(doc: dict[str, Any], header_type: str, what: str) -> bool:
    return media_type(doc, header_type, what) in INDEX_TYPES


def pick_platform(index: dict[str, Any], what: str) -> Blob:
    """The linux/<this machine's arch> entry of an index or manifest list."""
    os_name, arch = machine_platform()
    seen = []
    for entry in index.get("manifests") or []:
        plat = entry.get("platform") or {}
        seen.append(f"{plat.get('os', '?')}/{plat.get('architecture', '?')}")
        if plat.get("os") == os_name and plat.get("architecture") == arch:
            if arch != "arm64" or plat.get("variant", "v8") == "v8":
                return descriptor(entry, what)
    raise ImageError(f"{what}: no {os_name}/{arch} image in the index (it has: {', '.join(seen) or 'nothing'})")


def descriptor(entry: Any, what: str) -> Blob:
    """A descriptor ({digest, mediaType, size}) of a manifest or index, checked."""
    if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
        raise ImageError(f"{what}: malformed descriptor in manifest")
    digest = entry["digest"]
    if not digest.startswith("sha256:") or len(digest) != 71:
        raise ImageError(f"{what}: unsupported digest {digest!r} (only sha256)")
    size = entry.get("size", -1)  # -1: not given
    if type(size) is not int or size < -1 or ("size" in entry and size < 0):
        raise ImageError(f"{what}: malformed descriptor in manifest: size {size!r}")
    return Blob(digest=digest, media_type=str(entry.get("mediaType", "")), size=size)


def read_limit(blob: Blob, what: str) -> int:
    """How much of a blob that is read whole (config, manifest) may be read: its size, at most 16 MiB."""
    if blob.size > MAX_METADATA_BYTES:
        raise ImageError(f"{what}: refusing blob {blob.digest}: its descriptor says {blob.size} bytes, more than"
                         f" the {MAX_METADATA_BYTES} a config or manifest may have")
    return blob.size if blob.size >= 0 else MAX_METADATA_BYTES


def image_manifest(data: bytes, digest: str, top_digest: str, what: str) -> Manifest:
    doc = load(data, what)
    kind = media_type(doc, "", what)
    if kind not in MANIFEST_TYPES:
        raise ImageError(f"{what}: unsupported manifest media type {kind!r}")
    layers = tuple(descriptor(entry, what) for entry in doc.get("layers") or [])
    for layer in layers:
        if "zstd" in layer.media_type:
            raise ImageError(f"{what}: zstd-compressed layers are not supported (use gzip or uncompressed layers)")
        if "encrypted" in layer.media_type:
            raise ImageError(f"{what}: encrypted layers are not supported")
    config = descriptor(doc.get("config"), what)
    return Manifest(digest=digest, top_digest=top_digest, config=config, layers=layers, raw=data)
