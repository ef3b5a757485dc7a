"""prepare(): turn an image reference into an unpacked rootfs in the node-local cache, honouring the pull policy.

This is the one entry point the container runtimes call. It resolves the reference to a manifest digest
(from the registry, or by reading a local layout/archive), returns the cached rootfs when the policy
allows, and otherwise builds the cache entry exactly once per node (see cache.py), streaming each layer
through digest verification and the safe unpacker.

Policies, as Kubernetes' imagePullPolicy: `IfNotPresent` uses the cache without touching the network
(a tag is looked up in the tag->digest record of its last pull); `Always` asks the registry what the tag
points at now (HEAD) and reuses the cache when the digest is unchanged; `Never` fails with
ErrImageNeverPull unless the image is cached. Local layouts and archives are read each time (that is
cheap and is their "re-check"), and their rootfs is cached under their manifest digest too.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from .cache import ImageCache, remove_tree
from .errors import NEVER_PULL, ImageError
from .local import LocalImage
from .manifest import Blob, Manifest
from .model import ImageConfig, PreparedImage
from .reference import Reference, parse_reference
from .registry import Registry
from .store import ImageStore
from .stream import LayerStream
from .unpack import LayerApplier

POLICIES = ("Always", "IfNotPresent", "Never")


class _Source(Protocol):
    def open_blob(self, blob: Blob): ...  # noqa: ANN201 - a readable, closable binary stream

    def read_blob(self, blob: Blob) -> bytes: ...


def prepare(reference: str, pull_policy: str, cache_dir: Path, *, auth_file: Path | None = None,
            insecure: Sequence[str] = (), store: Path | None = None) -> PreparedImage:
    """Make `reference` available as a rootfs on this node; see the module docstring for the policies. A bare
    `name:tag` loaded into the image `store` (`podline image load`) is that image, else it is pulled."""
    started = time.monotonic()
    loaded = ImageStore(store).lookup(reference) if store is not None else None
    ref = parse_reference(loaded or reference)
    if pull_policy not in POLICIES:
        raise ImageError(f"{reference}: unknown imagePullPolicy {pull_policy!r} (Always, IfNotPresent or Never)")
    if ref.transport == "dir":
        if not os.path.isdir(ref.path):
            raise ImageError(f"{reference}: no such rootfs directory {ref.path}")
        return PreparedImage(reference, "", Path(ref.path), ImageConfig(), False, time.monotonic() - started)
    cache = ImageCache(Path(cache_dir), reference)
    cache.check()  # before anything in it is trusted (and again before each use)
    try:
        return _prepare(ref, reference, loaded, pull_policy, cache, auth_file, insecure, started)
    except OSError as exc:  # the node's disk or cache (full, or raced by a collection): worth a retry
        raise ImageError(f"{reference}: image cache: {exc.strerror or exc}", transient=True) from None


def _prepare(ref: Reference, reference: str, loaded: str | None, pull_policy: str, cache: ImageCache,
             auth_file: Path | None, insecure: Sequence[str], started: float) -> PreparedImage:
    if loaded is not None and pull_policy == "Never":
        pull_policy = "IfNotPresent"  # a loaded image is on the node already, as `kind load` + Never expects
    for _ in range(3):  # a collection may remove the entry between its lookup and its use: prepare it again
        if ref.transport == "docker":
            digest, pulled = _from_registry(ref, reference, pull_policy, cache, auth_file, tuple(insecure))
        else:
            digest, pulled = _from_local(ref, reference, pull_policy, cache)
        if not cache.hold(digest):
            continue
        config = _sound_config(cache.entry(digest))
        if config is not None:
            break
        print(f"podline: image cache: {reference}: entry {digest} is damaged (its config.json); made again",
              file=sys.stderr)  # (a power loss, say: nothing in the cache is fsynced) ...
        remove_tree(cache.entry(digest))  # ... so it is built again, not trusted
    else:
        raise ImageError(f"{reference}: its cache entry keeps being collected or damaged (is the disk full?)",
                         transient=True)
    if pulled:
        _collect(cache)
    return PreparedImage(reference, digest, cache.entry(digest) / "rootfs", config, pulled,
                         time.monotonic() - started)


def _sound_config(entry: Path) -> ImageConfig | None:
    """The entry's image config, if it is the one its manifest names (by digest) and a JSON object; None for a
    damaged entry (an empty or truncated config.json lost the image's ENTRYPOINT, or crashed the runner)."""
    try:
        raw = (entry / "config.json").read_bytes()
        manifest = json.loads((entry / "manifest.json").read_bytes())
        doc = json.loads(raw)
    except (OSError, ValueError):
        return None
    named = str((manifest.get("config") or {}).get("digest") or "") if isinstance(manifest, dict) else ""
    if not isinstance(doc, dict) or (named.startswith("sha256:") and named[7:] != hashlib.sha256(raw).hexdigest()):
        return None
    return ImageConfig.from_image_config(doc)


def _collect(cache: ImageCache) -> None:
    """After a pull, the kubelet's image GC (see cache.py); housekeeping: the pull itself succeeded."""
    try:
        for digest in cache.collect():
            print(f"podline: image cache: removed unused {digest} (disk over its high mark)", file=sys.stderr)
    except OSError as exc:
        print(f"podline: image cache collection failed: {exc!r}", file=sys.stderr)


def _never(reference: str) -> ImageError:
    return ImageError(f"{reference}: not in this node's image cache and imagePullPolicy is Never", reason=NEVER_PULL)


def _from_registry(ref: Reference, text: str, policy: str, cache: ImageCache, auth_file: Path | None,
                   insecure: tuple[str, ...]) -> tuple[str, bool]:
    key = str(ref)
    record = cache.read_ref(key)
    cached = record["digest"] if record and cache.has(record["digest"]) else ""
    if not cached and ref.digest and cache.has(ref.digest):
        cached = ref.digest  # a digest reference to a single-platform manifest: its own cache key
    if cached and policy != "Always":
        return cached, False
    if policy == "Never":
        raise _never(text)
    registry = Registry(ref, text, auth_file=auth_file, insecure=insecure)
    if cached and record:
        top = registry.head_digest()
        if top == record["top"]:
            return cached, False
    manifest = registry.resolve()
    pulled = cache.ensure(manifest.digest, lambda tmp: _build(tmp, manifest, registry, text))
    cache.write_ref(key, manifest.top_digest, manifest.digest)
    return manifest.digest, pulled


def _from_local(ref: Reference, text: str, policy: str, cache: ImageCache) -> tuple[str, bool]:
    image = LocalImage(ref, text)
    try:
        manifest = image.resolve()
        if cache.has(manifest.digest):
            return manifest.digest, False
        if policy == "Never":
            raise _never(text)
        return manifest.digest, cache.ensure(manifest.digest, lambda tmp: _build(tmp, manifest, image, text))
    finally:
        image.close()


def _build(tmp: Path, manifest: Manifest, source: _Source, text: str) -> None:
    """Fill `tmp` with config.json, manifest.json and rootfs/ (every blob's digest checked)."""
    config = source.read_blob(manifest.config)
    try:
        json.loads(config)
    except ValueError as exc:
        raise ImageError(f"{text}: the image config is not JSON: {exc}") from None
    (tmp / "config.json").write_bytes(config)
    (tmp / "manifest.json").write_bytes(manifest.raw)
    rootfs = tmp / "rootfs"
    rootfs.mkdir()
    applier = LayerApplier(rootfs, text)
    for layer in manifest.layers:
        label = layer.digest[: len("sha256:") + 12]
        with source.open_blob(layer) as blob:
            stream = LayerStream(blob, digest=layer.digest, what=f"{text}: layer {label}", budget=applier.stream)
            try:
                applier.apply(stream, label)
                stream.verify()
            finally:
                stream.close()
    applier.finish()
    os.chmod(rootfs, 0o755)
