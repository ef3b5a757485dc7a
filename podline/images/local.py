"""Read images stored on disk: OCI image layout directories, oci-archive and docker-archive tarballs.

They are resolved to the same `Manifest` a registry gives, so the cache and the unpacker do not care
where an image came from. A `docker save` archive has no manifest of its own; we synthesise a Docker v2
manifest from its manifest.json (config digest + layer diff IDs, which for its uncompressed layers are the
layer digests) and key the cache by that, so the same archive always maps to the same cache entry.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import BinaryIO

from .errors import ImageError
from .manifest import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    REF_NAME,
    Blob,
    Manifest,
    check_digest,
    descriptor,
    image_manifest,
    is_index,
    load,
    pick_platform,
    read_limit,
    sha256_of,
)
from .reference import Reference

_MAX_LINK_HOPS = 16


def _regular_members(members: list[tarfile.TarInfo]) -> tuple[dict[str, tarfile.TarInfo], dict[str, str]]:
    """Archive path -> the regular-file member holding its bytes, with in-archive links resolved.

    `docker save` writes the second and later copies of a layer (the empty layer repeats in classic
    builder images) as a symlink to the first `layer.tar`, and other tools use hard links; skipping links
    would make such archives unreadable. We resolve them ourselves, to a regular member of this archive
    only, rather than leaving it to tarfile's recursive lookup, which has no hop limit. A link that leaves
    the archive, loops or dangles is not an error until the image needs it (an archive may carry junk), so
    the second dict keeps why each such name is unusable.
    """
    by_name = {os.path.normpath(m.name): m for m in members}
    found: dict[str, tarfile.TarInfo] = {}
    problems: dict[str, str] = {}
    for member in members:
        if not (member.isfile() or member.issym() or member.islnk()):
            continue
        name = os.path.normpath(member.name)
        target: tarfile.TarInfo | None = member
        problem = ""
        for _ in range(_MAX_LINK_HOPS):
            if target is None or target.isfile() or not (target.issym() or target.islnk()):
                break
            link = target.linkname
            joined = os.path.join(os.path.dirname(target.name), link) if target.issym() else link
            resolved = os.path.normpath(joined)
            if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
                problem = f"the archive's link {member.name} -> {member.linkname} points outside the archive"
                break
            target = by_name.get(resolved)
        else:
            problem = f"the archive's link {member.name} has too many levels of links"
        if not problem and (target is None or not target.isfile()):
            problem = f"the archive's link {member.name} -> {member.linkname} names no file in the archive"
        if problem:
            problems[name] = problem
        elif target is not None:
            found[name] = target
    return found, problems


class LocalImage:
    """An image in an OCI layout, an oci-archive or a docker-archive; `close()` when done."""

    def __init__(self, ref: Reference, text: str) -> None:
        self.ref, self.what = ref, text
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        self._link_problems: dict[str, str] = {}
        self._docker_layers: dict[str, str] = {}  # synthesized layer digest -> member name
        path = Path(ref.path)
        if ref.transport == "oci":
            if not (path / "index.json").is_file():
                raise ImageError(f"{text}: not an OCI image layout (no {path}/index.json)")
        else:
            if not path.is_file():
                raise ImageError(f"{text}: no such archive file {path}")
            try:
                self._tar = tarfile.open(path, "r:*")
                self._members, self._link_problems = _regular_members(self._tar.getmembers())
            except (tarfile.TarError, OSError) as exc:
                raise ImageError(f"{text}: cannot read the archive: {exc}") from None

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    # --- files of the layout ------------------------------------------------------------------------
    def _read(self, name: str) -> bytes:
        with self._open(name) as f:
            return f.read()

    def _open(self, name: str) -> BinaryIO:
        if self._tar is None:
            try:
                return open(os.path.join(self.ref.path, name), "rb")  # noqa: SIM115 - caller closes
            except OSError as exc:
                raise ImageError(f"{self.what}: cannot read {name}: {exc.strerror}") from None
        member = self._members.get(os.path.normpath(name))
        extracted = self._tar.extractfile(member) if member is not None else None
        if extracted is None:
            raise ImageError(f"{self.what}: {self._missing(name)}")
        return extracted  # type: ignore[return-value]

    def _missing(self, name: str) -> str:
        """Why `name` cannot be read from the archive: a refused link says so, anything else is absent."""
        return self._link_problems.get(os.path.normpath(name), f"the archive has no {name}")

    def _has(self, name: str) -> bool:
        if self._tar is None:
            return os.path.isfile(os.path.join(self.ref.path, name))
        return os.path.normpath(name) in self._members

    @staticmethod
    def _blob_name(digest: str) -> str:
        algorithm, _, hexpart = digest.partition(":")
        return f"blobs/{algorithm}/{hexpart}"

    def open_blob(self, blob: Blob) -> BinaryIO:
        """The blob's bytes as stored (layers compressed or not); the caller verifies the digest."""
        if blob.digest in self._docker_layers:
            return self._open(self._docker_layers[blob.digest])
        return self._open(self._blob_name(blob.digest))

    def read_blob(self, blob: Blob) -> bytes:
        """A blob read whole (index, manifest, config): at most its declared size, or 16 MiB without one."""
        limit = read_limit(blob, self.what)
        with self.open_blob(blob) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            said = "its descriptor's size" if blob.size >= 0 else "no size in its descriptor; the most read whole"
            raise ImageError(f"{self.what}: refusing blob {blob.digest}: larger than {limit} bytes ({said})")
        check_digest(data, blob.digest, self.what)
        return data

    # --- resolving --------------------------------------------------------------------------------
    def resolve(self) -> Manifest:
        if self.ref.transport == "docker-archive" and not self._has("index.json"):
            return self._docker_manifest()
        index = load(self._read("index.json"), self.what)
        entries = [e for e in index.get("manifests") or [] if isinstance(e, dict)]
        tag = self.ref.tag
        if tag:
            chosen = [e for e in entries if (e.get("annotations") or {}).get(REF_NAME) == tag]
            if not chosen:
                raise ImageError(f"{self.what}: no image tagged {tag!r} in the layout")
        else:
            chosen = entries
            if len(chosen) != 1:
                tags = sorted({(e.get("annotations") or {}).get(REF_NAME, "?") for e in entries})
                raise ImageError(f"{self.what}: the layout holds {len(chosen)} images; name one with :TAG ({tags})")
        entry = chosen[-1]
        top = descriptor(entry, self.what)
        data = self.read_blob(top)
        doc = load(data, self.what)
        if is_index(doc, top.media_type, self.what):
            chosen_blob = pick_platform(doc, self.what)
            return image_manifest(self.read_blob(chosen_blob), chosen_blob.digest, top.digest, self.what)
        return image_manifest(data, top.digest, top.digest, self.what)

    def _docker_manifest(self) -> Manifest:
        try:
            entries = json.loads(self._read("manifest.json"))
        except ValueError as exc:
            raise ImageError(f"{self.what}: manifest.json is not JSON: {exc}") from None
        if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
            count = len(entries) if isinstance(entries, list) else "no"
            raise ImageError(f"{self.what}: expected one image in manifest.json, found {count}")
        entry = entries[0]
        config_bytes = self._read(str(entry.get("Config", "")))
        config_doc = load(config_bytes, self.what)
        diff_ids = (config_doc.get("rootfs") or {}).get("diff_ids") or []
        layer_names = entry.get("Layers") or []
        if len(diff_ids) != len(layer_names):
            raise ImageError(f"{self.what}: {len(layer_names)} layers but {len(diff_ids)} diff_ids in the config")
        config_digest = sha256_of(config_bytes)
        self._docker_layers[config_digest] = str(entry["Config"])
        layers = []
        for digest, name in zip(diff_ids, layer_names, strict=True):
            member = self._members.get(os.path.normpath(str(name)))
            if member is None:
                raise ImageError(f"{self.what}: {self._missing(str(name))}")
            self._docker_layers[str(digest)] = os.path.normpath(str(name))
            layers.append({"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "digest": digest,
                           "size": member.size})
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": layers,
        }
        raw = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        digest = sha256_of(raw)
        return image_manifest(raw, digest, digest, self.what)

