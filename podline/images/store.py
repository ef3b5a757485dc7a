"""The image store `podline image load` fills (like `kind load`): names for images that come as files.

Why: on a cluster without a registry, an image built elsewhere arrives as a `docker save` or `skopeo copy`
archive. Loading it gives it a plain `name:tag`, and a manifest naming that image (`image: tools:1.2`, no
registry host) runs it: such a bare name is looked up here first, and only otherwise pulled from Docker Hub,
as Docker looks at its local images before pulling.

The store lives on the context's shared directory (`<shared>/images/store`), so every node of a cluster sees
it; each node still unpacks an image once into its own node-local image cache (`cache.py`). Layout:

    archives/<sha256 of the file>.tar   a loaded archive (docker-archive or oci-archive), copied in whole
    refs.json                           {"name:tag": {"format": "docker-archive", "archive": "<sha256>", "loaded": t}}
    lock                                flock()ed while refs.json or archives/ change

An OCI layout directory is loaded as the oci-archive it would tar into. An archive goes once no name refers
to it (a name removed, or loaded again with other content).

What a name stands for is rebuilt from its format and digest, never read as a path from refs.json, and the
store is refused (like the image cache) unless it is this user's own directory, writable by nobody else:
whoever can write it decides what every pod naming a loaded image runs.
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

from .cache import is_hex_digest, not_private
from .errors import ImageError
from .reference import DOCKER_HUB, parse_reference

OCI_REF_NAME = "org.opencontainers.image.ref.name"
FORMATS = ("docker-archive", "oci-archive")


@dataclass(frozen=True)
class Stored:
    name: str  # name:tag
    reference: str  # the local reference it stands for
    loaded: float
    size: int


def bare_key(text: str) -> str | None:
    """`tools:1.2` -> "tools:1.2", `tools` -> "tools:latest", Docker Hub's long forms alike; None for anything
    naming another registry, a digest or a transport (those never come from the store)."""
    if "@" in text or "://" in text or text.startswith(("oci:", "oci-archive:", "docker-archive:", "dir:", "/")):
        return None
    text = _hub_short(text)  # `docker.io/library/tools:1.2` is `tools:1.2`, as containerd and kind see it
    try:
        ref = parse_reference(text)
    except ImageError:
        return None
    first = text.split("/", 1)[0]
    if ref.transport != "docker" or ref.registry != DOCKER_HUB or ("/" in text and ("." in first or ":" in first)):
        return None
    return f"{text}:latest" if ":" not in text.rsplit("/", 1)[-1] else text


def _hub_short(tag: str) -> str:
    """A RepoTag as `docker load` names it: skopeo writes `docker.io/library/tools:1.2` for `tools:1.2`."""
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/", "library/"):
        if tag.startswith(prefix):
            return tag[len(prefix):]
    return tag


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- reading --------------------------------------------------------------------------------------
    def check(self) -> None:
        """Refuse a store another user could have filled (see the module docstring)."""
        try:
            st = os.lstat(self.root)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ImageError(f"cannot stat the image store {self.root}: {exc.strerror or exc}") from None
        problem = not_private(st)
        if problem:
            raise ImageError(f"refusing the image store {self.root}: it {problem}")

    def _refs(self) -> dict[str, dict]:
        self.check()
        try:
            refs = json.loads((self.root / "refs.json").read_text())
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in refs.items() if _valid(v)} if isinstance(refs, dict) else {}

    def _archive(self, entry: dict) -> Path:
        return self.root / "archives" / f"{entry['archive']}.tar"

    def _reference(self, entry: dict) -> str:
        return f"{entry['format']}:{self._archive(entry)}"

    def lookup(self, text: str) -> str | None:
        """The local reference a bare image name stands for, if it was loaded."""
        key = bare_key(text)
        entry = self._refs().get(key) if key else None
        return self._reference(entry) if entry else None

    def list(self) -> list[Stored]:
        """Every name; a size of -1 for one whose archive is missing."""
        out = []
        for name, entry in sorted(self._refs().items()):
            try:
                size = self._archive(entry).stat().st_size
            except OSError:
                size = -1
            out.append(Stored(name, self._reference(entry), float(entry.get("loaded", 0.0)), size))
        return out

    # --- changing -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict]]:
        """refs.json to change, under the lock; archives no name refers to afterwards go."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.root, 0o700)
        self.check()
        with open(self.root / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            refs = self._refs()
            yield refs
            tmp = self.root / f".refs.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(refs, indent=1, sort_keys=True))
            os.replace(tmp, self.root / "refs.json")
            kept = {f"{e['archive']}.tar" for e in refs.values()}
            for archive in (self.root / "archives").glob("*.tar"):
                if archive.name not in kept:
                    archive.unlink(missing_ok=True)

    def load(self, source: Path, name: str | None = None) -> list[str]:
        """Copy an archive (or an OCI layout, as an archive) in and name it: `name`, else the names the
        archive carries (docker-archive RepoTags). Returns the names given; a refused load stores nothing."""
        key = bare_key(name) if name is not None else None
        if name is not None and key is None:
            raise ImageError(f"--name {name!r}: give a plain NAME[:TAG] (no registry host, digest or transport)")
        with self._locked() as refs:  # one load or removal at a time: no archive goes between copy and record
            copied, transport, names, images = self._copy_in(source)
            try:
                if key is not None:
                    names = [key]
                if not names:
                    raise ImageError(f"{source}: the image carries no name: give one with --name NAME:TAG")
                if images != 1:
                    raise ImageError(f"{source}: holds {images} images; load an archive of one")
            except ImageError:
                copied.unlink(missing_ok=True)
                raise
            digest = _sha256(copied)
            os.replace(copied, self.root / "archives" / f"{digest}.tar")
            for key in names:
                refs[key] = {"format": transport, "archive": digest, "loaded": time.time()}
        return names

    def remove(self, name: str) -> bool:
        key = bare_key(name)
        with self._locked() as refs:
            return refs.pop(key or name, None) is not None

    def _copy_in(self, source: Path) -> tuple[Path, str, list[str], int]:
        """A copy of the archive in archives/ (a temporary name), its format, the names it carries and how
        many images it holds."""
        archives = self.root / "archives"
        archives.mkdir(mode=0o700, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=archives, prefix=".load.", suffix=".tmp")
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
            return (tmp, *_inspect(tmp, source))
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ImageError(f"{source}: cannot load: {exc.strerror or exc}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _valid(entry: object) -> bool:
    """An entry of refs.json as this module writes them (anything else is ignored: never a path to trust)."""
    return (isinstance(entry, dict) and entry.get("format") in FORMATS and isinstance(entry.get("archive"), str)
            and is_hex_digest(entry["archive"]))


def _inspect(archive: Path, source: Path) -> tuple[str, list[str], int]:
    """Format, the (bare) names a docker archive carries, and the number of images."""
    try:
        with tarfile.open(archive, "r:*") as tar:  # docker save | gzip is an archive too
            members = {m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()}
            if "oci-layout" in members and "index.json" in members:
                index = json.load(tar.extractfile(_member(tar, "index.json")))  # type: ignore[arg-type]
                manifests = index.get("manifests") if isinstance(index, dict) else None
                if not isinstance(manifests, list):
                    raise ImageError(f"{source}: index.json has no manifests list")
                return "oci-archive", [], len(manifests)
            if "manifest.json" in members:
                manifest = json.load(tar.extractfile(_member(tar, "manifest.json")))  # type: ignore[arg-type]
                if not isinstance(manifest, list) or not all(isinstance(m, dict) for m in manifest):
                    raise ImageError(f"{source}: manifest.json is not a list of images")
                tags = manifest[0].get("RepoTags") if len(manifest) == 1 else []
                if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                    raise ImageError(f"{source}: RepoTags is not a list of names")
                return "docker-archive", [key for t in tags if (key := bare_key(_hub_short(t)))], len(manifest)
    except (tarfile.TarError, ValueError, KeyError, OSError, EOFError) as exc:
        raise ImageError(f"{source}: not a readable image archive ({exc})") from None
    raise ImageError(f"{source}: neither an OCI layout/archive nor a docker archive")


def _member(tar: tarfile.TarFile, name: str) -> tarfile.TarInfo:
    for candidate in (name, f"./{name}"):
        with contextlib.suppress(KeyError):
            return tar.getmember(candidate)
    raise KeyError(name)
