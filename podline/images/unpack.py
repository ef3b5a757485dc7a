"""Apply image layers (tar streams) in order onto a fresh rootfs directory, refusing anything that escapes it.

Layers come from registries and archives we do not control, and the rootfs is unpacked by a process that
may run as root, so every entry is checked before anything touches the disk:

* member names must be relative and free of `..` (a leading `./` is fine); hardlink targets likewise;
* nothing is ever written through a symlink: the applier keeps its own tree of what it has created
  (directories, files, symlinks), and an entry whose parent is not a directory it made is refused, so no
  path operation ever resolves a symlink from the image (files are also opened with O_NOFOLLOW|O_EXCL);
* relative symlink targets may not climb above the rootfs (`a/b -> ../../x`). Absolute targets such as
  `bin/sh -> /bin/busybox` are normal in images and allowed: the container runtime resolves them inside
  the rootfs (it is `/` in the container); host-side code must never follow links inside a rootfs;
* character/block devices and FIFOs are refused (a runtime provides /dev); setuid/setgid bits are
  stripped; ownership is applied only when running as root; xattrs (file capabilities) are dropped.

One image may unpack to at most PODLINE_IMAGE_MAX_BYTES (default 64 GiB): the decompressed layer streams
and, separately, the sizes of the regular files written (a sparse member is small in the stream but not on
disk) are each counted against that limit, and the image is refused once either passes it.

Whiteouts follow the OCI image spec: `.wh.<name>` deletes `<name>` from lower layers, `.wh..wh..opq`
empties its directory of lower-layer content (entries of the same layer are kept). Directory modes and
mtimes are applied last, deepest first, so writing children does not disturb them.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
from typing import BinaryIO

from .errors import ImageError

MAX_BYTES_ENV = "PODLINE_IMAGE_MAX_BYTES"
DEFAULT_MAX_BYTES = 64 << 30
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_COPY = 1 << 20
_DIR, _FILE, _LINK = "d", "f", "l"


def max_image_bytes(image: str) -> int:
    """The most one image may unpack to: $PODLINE_IMAGE_MAX_BYTES (a positive integer), else 64 GiB."""
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ImageError(f"{image}: {MAX_BYTES_ENV}={text!r} is not a positive number of bytes")
    return value


class Budget:
    """A count of bytes against one image's limit; take() raises the one-line ImageError when it is passed."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit, self.what, self.used = limit, what, 0

    def take(self, n: int, where: str = "") -> None:
        self.used += n
        if self.used > self.limit:
            raise ImageError(f"{where or self.what}: refusing the image: it unpacks to more than {self.limit} bytes"
                             f" (the limit of one image; {MAX_BYTES_ENV} sets it)")


class LayerApplier:
    """Applies layers to `root` (an empty directory); call `apply()` per layer, then `finish()`."""

    def __init__(self, root: str | os.PathLike[str], image: str, max_bytes: int | None = None) -> None:
        self.root = os.fspath(root)
        self.image = image
        self.max_bytes = max_image_bytes(image) if max_bytes is None else max_bytes
        self.files = Budget(self.max_bytes, image)  # sizes of the regular files written
        self.stream = Budget(self.max_bytes, image)  # decompressed layer bytes, for LayerStream
        self.kinds: dict[str, str] = {"": _DIR}  # relative path -> kind, for everything on disk
        self.children: dict[str, set[str]] = {"": set()}  # directory -> names of its entries
        self.dir_meta: dict[str, tuple[int, float, int, int]] = {}  # dir -> mode, mtime, uid, gid
        self.as_root = os.geteuid() == 0
        self._layer_paths: set[str] = set()  # entries of the layer being applied, and their parents
        self._layer = ""

    # --- public ------------------------------------------------------------------------------------
    def apply(self, stream: BinaryIO, layer: str) -> None:
        """Apply one uncompressed tar stream (read sequentially, never seeked)."""
        self._layer, self._layer_paths = layer, set()
        try:
            with tarfile.open(fileobj=stream, mode="r|", errorlevel=2) as tar:
                for member in tar:
                    try:
                        self._entry(tar, member)
                    except OSError as exc:
                        raise self._error(f"{member.name!r}: {exc.strerror or exc}") from None
        except tarfile.TarError as exc:
            raise self._error(f"not a valid tar stream: {exc}") from None

    def finish(self) -> None:
        """Set directory modes, owners and mtimes, deepest first."""
        for path in sorted(self.dir_meta, key=lambda p: p.count("/"), reverse=True):
            mode, mtime, uid, gid = self.dir_meta[path]
            full = self._full(path)
            if self.as_root:
                os.chown(full, uid, gid, follow_symlinks=False)
            os.chmod(full, mode)
            os.utime(full, (mtime, mtime), follow_symlinks=False)

    # --- one entry ---------------------------------------------------------------------------------
    def _error(self, problem: str) -> ImageError:
        return ImageError(f"{self.image}: layer {self._layer}: {problem}")

    def _clean(self, name: str, what: str) -> str:
        if name.startswith("/"):
            raise self._error(f"refusing {what} {name!r}: absolute path")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self._error(f"refusing {what} {name!r}: '..' escapes the rootfs")
        if "\0" in name:
            raise self._error(f"refusing {what} {name!r}: NUL in name")
        return "/".join(parts)

    def _full(self, path: str) -> str:
        return f"{self.root}/{path}" if path else self.root

    def _entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        path = self._clean(member.name, "entry")
        if not path:
            return  # the root itself ("./"): its mode is the cache's business
        parent, _, base = path.rpartition("/")
        if base == OPAQUE:
            self._parents(path)
            self._mark(parent)
            self._opaque(parent)
            return
        if base.startswith(WHITEOUT):
            self._whiteout(parent, base[len(WHITEOUT) :])
            return
        if member.ischr() or member.isblk() or member.isfifo():
            raise self._error(f"refusing device node or FIFO {member.name!r}")
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise self._error(f"refusing {member.name!r}: unsupported tar entry type {member.type!r}")
        self._parents(path)
        existing = self.kinds.get(path)
        if existing is not None and not (existing == _DIR and member.isdir()):
            self._remove(path)
        self._mark(path)
        full = self._full(path)
        mode = member.mode & 0o7777 & ~(stat.S_ISUID | stat.S_ISGID)
        if member.isdir():
            if existing != _DIR:
                os.mkdir(full, 0o700)
                self._add(path, _DIR)
            self.dir_meta[path] = (mode, member.mtime, member.uid, member.gid)
        elif member.isreg():
            self._write_file(tar, member, full, mode)
            self._add(path, _FILE)
        elif member.issym():
            target = member.linkname
            if not target or "\0" in target:
                raise self._error(f"refusing symlink {member.name!r} with an empty target")
            if not target.startswith("/"):
                resolved = posixpath.normpath(posixpath.join(parent, target))
                if resolved == ".." or resolved.startswith("../"):
                    raise self._error(f"refusing symlink {member.name!r} -> {target!r}: climbs above the rootfs")
            os.symlink(target, full)
            self._add(path, _LINK)
            self._owner_and_time(full, member)
        else:  # hardlink
            target = self._clean(member.linkname, "hardlink target")
            kind = self.kinds.get(target)
            if kind is None or kind == _DIR:
                problem = "not a file in the image"
                raise self._error(f"refusing hardlink {member.name!r} -> {member.linkname!r}: {problem}")
            os.link(self._full(target), full, follow_symlinks=False)
            self._add(path, kind)

    def _write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, full: str, mode: int) -> None:
        self.files.take(member.size, f"{self.image}: layer {self._layer}: {member.name!r}")
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            if member.size:
                source = tar.extractfile(member)
                assert source is not None
                remaining = member.size
                while remaining > 0:
                    chunk = source.read(min(remaining, _COPY))
                    if not chunk:
                        raise self._error(f"{member.name!r}: unexpected end of data")
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                    remaining -= len(chunk)
            if self.as_root:
                os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, mode)
            os.utime(fd, (member.mtime, member.mtime))
        finally:
            os.close(fd)

    def _owner_and_time(self, full: str, member: tarfile.TarInfo) -> None:
        if self.as_root:
            os.chown(full, member.uid, member.gid, follow_symlinks=False)
        os.utime(full, (member.mtime, member.mtime), follow_symlinks=False)

    # --- the tree of what is on disk -------------------------------------------------------------------
    def _parents(self, path: str) -> None:
        """Make sure every parent of `path` is a directory this applier made (creating missing ones)."""
        parent = ""
        for part in path.split("/")[:-1]:
            current = f"{parent}/{part}" if parent else part
            kind = self.kinds.get(current)
            if kind is None:
                os.mkdir(self._full(current), 0o755)
                self._add(current, _DIR)
            elif kind == _LINK:
                raise self._error(f"refusing {path!r}: its parent {current!r} is a symlink (never written through)")
            elif kind != _DIR:
                raise self._error(f"refusing {path!r}: its parent {current!r} is not a directory")
            parent = current

    def _add(self, path: str, kind: str) -> None:
        parent, _, base = path.rpartition("/")
        self.kinds[path] = kind
        self.children[parent].add(base)
        if kind == _DIR:
            self.children.setdefault(path, set())

    def _mark(self, path: str) -> None:
        """Record `path` and its parents as belonging to the current layer (an opaque dir keeps them)."""
        while path and path not in self._layer_paths:
            self._layer_paths.add(path)
            path = path.rpartition("/")[0]

    def _forget(self, path: str) -> None:
        for name in self.children.pop(path, ()):
            self._forget(f"{path}/{name}" if path else name)
        self.kinds.pop(path, None)
        self.dir_meta.pop(path, None)

    def _remove(self, path: str) -> None:
        full = self._full(path)
        if self.kinds[path] == _DIR:
            shutil.rmtree(full)
        else:
            os.unlink(full)
        self._forget(path)
        parent, _, base = path.rpartition("/")
        self.children[parent].discard(base)

    def _whiteout(self, parent: str, name: str) -> None:
        if not name or name in (".", "..") or "/" in name:
            raise self._error(f"refusing whiteout {WHITEOUT + name!r} in {parent or '/'!r}")
        path = f"{parent}/{name}" if parent else name
        if self.kinds.get(parent) == _DIR and path in self.kinds and path not in self._layer_paths:
            self._remove(path)

    def _opaque(self, directory: str) -> None:
        """Remove lower-layer content under `directory`, keeping what the current layer wrote there."""
        for name in list(self.children.get(directory, ())):
            path = f"{directory}/{name}" if directory else name
            if path not in self._layer_paths:
                self._remove(path)
            elif self.kinds.get(path) == _DIR:
                self._opaque(path)
