"""The image store `podline image load` fills (like `kind load`): names for images that come as files.

Why: on a cluster without a registry, an image built elsewhere arrives as a `docker save` or `skopeo copy`
archive. Loading it gives it a plain `name:tag`, and a manifest naming that image (`image: tools:1.2`, no
registry host) runs it: such a bare name is looked up here first, and only otherwise pulled from Docker Hub,
as Docker looks at its local images before pulling.

The store lives on the context's shared directory (`<shared>/images/store`), so every node of a cluster sees
it; each node still unpacks an image once into its own node-local image cache (`cache.py`). Layout:

    archives/<sha256 of the file>.tar   a loaded archive (docker-archive or oci-archive), copied in whole
    refs.json                           {"name:tag": {"reference": "docker-archive:/…/x.tar", "archive": "/…/x.tar",
                                                      "loaded": t}}
    lock                                flock()ed while refs.json changes

An OCI layout directory is loaded as the oci-archive it would tar into. Removing a name removes its archive
once no other name refers to it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import ImageError
from .reference import DOCKER_HUB, parse_reference

OCI_REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Stored:
    name: str  # name:tag
    reference: str  # the local reference it stands for
    loaded: float
    size: int


def bare_key(text: str) -> str | None:
    """`tools:1.2` -> "tools:1.2", `tools` -> "tools:latest"; None for anything naming a registry, a
    digest or a transport (those never come from the store)."""
    if "@" in text or "://" in text or text.startswith(("oci:", "oci-archive:", "docker-archive:", "dir:", "/")):
        return None
    try:
        ref = parse_reference(text)
    except ImageError:
        return None
    first = text.split("/", 1)[0]
    if ref.transport != "docker" or ref.registry != DOCKER_HUB or ("/" in text and ("." in first or ":" in first)):
        return None
    return f"{text}:latest" if ":" not in text.rsplit("/", 1)[-1] else text


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- reading --------------------------------------------------------------------------------------
    def _refs(self) -> dict[str, dict]:
        try:
            refs = json.loads((self.root / "refs.json").read_text())
        except (OSError, ValueError):
            return {}
        return refs if isinstance(refs, dict) else {}

    def lookup(self, text: str) -> str | None:
        """The local reference a bare image name stands for, if it was loaded."""
        key = bare_key(text)
        entry = self._refs().get(key) if key else None
        return entry.get("reference") if isinstance(entry, dict) else None

    def list(self) -> list[Stored]:
        out = []
        for name, entry in sorted(self._refs().items()):
            with contextlib.suppress(OSError, KeyError, TypeError):
                size = os.path.getsize(entry["archive"])
                out.append(Stored(name, entry["reference"], entry.get("loaded", 0.0), size))
        return out

    # --- changing -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict]]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            refs = self._refs()
            yield refs
            tmp = self.root / f".refs.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(refs, indent=1, sort_keys=True))
            os.replace(tmp, self.root / "refs.json")

    def load(self, source: Path, name: str | None = None) -> list[str]:
        """Copy an archive (or an OCI layout, as an archive) in and name it: `name`, else the names the
        archive carries (docker-archive RepoTags). Returns the names given."""
        key = bare_key(name) if name is not None else None
        if name is not None and key is None:
            raise ImageError(f"--name {name!r}: give a plain NAME[:TAG] (no registry host, digest or transport)")
        archive, transport, names, tags = self._copy_in(source)
        try:
            if key is not None:
                names = [key]
            if not names:
                raise ImageError(f"{source}: the image carries no name: give one with --name NAME:TAG")
            if transport == "oci-archive" and len(tags) > 1:
                raise ImageError(f"{source}: holds {len(tags)} images; load an archive of one")
        except ImageError:
            if str(archive) not in {e.get("archive") for e in self._refs().values()}:
                archive.unlink(missing_ok=True)  # a refused load stores nothing
            raise
        reference = f"{transport}:{archive}" + (f":{tags[0]}" if transport == "oci-archive" and tags else "")
        with self._locked() as refs:
            for key in names:
                refs[key] = {"reference": reference, "archive": str(archive), "loaded": time.time()}
        return names

    def remove(self, name: str) -> bool:
        key = bare_key(name)
        with self._locked() as refs:
            entry = refs.pop(key or name, None)
            if entry is None:
                return False
            if entry.get("archive") and entry["archive"] not in {e.get("archive") for e in refs.values()}:
                Path(entry["archive"]).unlink(missing_ok=True)
        return True

    def _copy_in(self, source: Path) -> tuple[Path, str, list[str], list[str]]:
        """The archive in the store, its transport, the names it carries and its OCI tags."""
        archives = self.root / "archives"
        archives.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=archives, prefix=".load.", suffix=".tar")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                if source.is_dir():
                    if not (source / "oci-layout").is_file():
                        raise ImageError(f"{source}: a directory must be an OCI image layout (no oci-layout file)")
                    with tarfile.open(fileobj=out, mode="w") as tar:
                        for member in ("oci-layout", "index.json", "blobs"):
                            tar.add(source / member, arcname=member)
                else:
                    with open(source, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 20)
            transport, names, tags = _inspect(tmp, source)
            digest = hashlib.sha256()
            with open(tmp, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
            final = archives / f"{digest.hexdigest()}.tar"
            os.replace(tmp, final)
            return final, transport, names, tags
        except OSError as exc:
            raise ImageError(f"{source}: cannot load: {exc.strerror or exc}") from None
        finally:
            tmp.unlink(missing_ok=True)


def _inspect(archive: Path, source: Path) -> tuple[str, list[str], list[str]]:
    try:
        with tarfile.open(archive, "r:") as tar:
            members = {m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()}
            if "oci-layout" in members and "index.json" in members:
                index = json.load(tar.extractfile(_member(tar, "index.json")))  # type: ignore[arg-type]
                tags = [m.get("annotations", {}).get(OCI_REF_NAME) for m in index.get("manifests", [])]
                return "oci-archive", [], [t for t in tags if t]
            if "manifest.json" in members:
                manifest = json.load(tar.extractfile(_member(tar, "manifest.json")))  # type: ignore[arg-type]
                if not isinstance(manifest, list) or len(manifest) != 1:
                    raise ImageError(f"{source}: a docker archive of one image is needed")
                names = [key for t in manifest[0].get("RepoTags") or [] if (key := bare_key(t))]
                return "docker-archive", names, []
    except (tarfile.TarError, ValueError, KeyError, AttributeError) as exc:
        raise ImageError(f"{source}: not a readable image archive ({exc})") from None
    raise ImageError(f"{source}: neither an OCI layout/archive nor a docker archive")


def _member(tar: tarfile.TarFile, name: str) -> tarfile.TarInfo:
    for candidate in (name, f"./{name}"):
        with contextlib.suppress(KeyError):
            return tar.getmember(candidate)
    raise KeyError(name)
