"""The node-local, content-addressed image cache: one unpacked rootfs per manifest digest, built once.

Layout under the cache directory:

    sha256/<hex>/rootfs/        the unpacked image (read-only by convention: shared by every container)
    sha256/<hex>/config.json    the raw image config blob
    sha256/<hex>/manifest.json  the manifest it was built from
    refs/<sha256 of reference>.json   {"reference", "top", "digest"}: what a tag resolved to last time
    locks/<hex>.lock            flock()ed while an entry is built
    tmp/<hex>.<random>/         an entry being built; renamed to sha256/<hex> when complete

An entry exists only once it is complete (built in tmp/, then one rename), so a crash mid-unpack leaves
at most a tmp/ directory, which the next builder of that digest removes under the lock. The lock is an
flock() on a per-digest file: it excludes threads (each opens its own file description) and processes
alike (several Slurm array tasks on one node), and the kernel drops it when a holder dies. The cache must
be on a node-local filesystem (flock on network filesystems is not reliable). A crash is survived; a power
loss may need the entry removed (nothing is fsync'ed, for speed).

The cache is trusted: whatever rootfs sits under a digest, or whatever a refs/ record says, is what runs.
Its default place may be /tmp/podline-images-<uid>, which another user of a shared node can create first
and fill. So the root is created with mode 0700 (its subdirectories too), and before every use it is
lstat()ed: a symlink, a non-directory, a directory owned by another uid, or one group/world-writable is
refused with an ImageError naming it (nothing under it is read).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import ImageError


def remove_tree(path: Path | str) -> None:
    """rmtree that also copes with directories an image made read-only (when not running as root)."""
    if not os.path.lexists(path):
        return
    if os.geteuid() != 0 and not os.path.islink(path):
        with contextlib.suppress(OSError):
            os.chmod(path, stat.S_IRWXU)
        for dirpath, dirnames, _ in os.walk(path):  # top-down: fixed before it is entered; links not followed
            for name in dirnames:
                child = os.path.join(dirpath, name)
                if not os.path.islink(child):
                    with contextlib.suppress(OSError):
                        os.chmod(child, stat.S_IRWXU)
    shutil.rmtree(path)


class ImageCache:
    def __init__(self, root: Path, what: str = "") -> None:
        self.root = Path(root)
        self.what = what  # the image, to name it in errors

    # --- trust --------------------------------------------------------------------------------------
    def check(self) -> None:
        """Create the root (mode 0700) if missing; refuse it unless it is our own, private, real directory."""
        prefix = f"{self.what}: " if self.what else ""
        try:
            self.root.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(self.root, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise ImageError(f"{prefix}cannot create the image cache {self.root}: {exc.strerror or exc}") from None
        try:
            st = os.lstat(self.root)
        except OSError as exc:
            raise ImageError(f"{prefix}cannot stat the image cache {self.root}: {exc.strerror or exc}") from None
        problem = ""
        if stat.S_ISLNK(st.st_mode):
            problem = "is a symlink"
        elif not stat.S_ISDIR(st.st_mode):
            problem = "is not a directory"
        elif st.st_uid != os.getuid():
            problem = f"is owned by uid {st.st_uid}, not by this user (uid {os.getuid()})"
        elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            problem = f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
        if problem:
            raise ImageError(f"{prefix}refusing the image cache {self.root}: it {problem} (another user could plant"
                             " images in it); remove it or choose another cache directory")

    def _subdir(self, name: str) -> Path:
        path = self.root / name
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
        return path

    def entry(self, digest: str) -> Path:
        return self.root / "sha256" / _hex(digest)

    def has(self, digest: str) -> bool:
        self.check()
        return (self.entry(digest) / "rootfs").is_dir()

    # --- tag/reference records -------------------------------------------------------------------------
    def _ref_path(self, reference: str) -> Path:
        return self.root / "refs" / (hashlib.sha256(reference.encode()).hexdigest() + ".json")

    def read_ref(self, reference: str) -> dict[str, str] | None:
        self.check()
        try:
            doc = json.loads(self._ref_path(reference).read_text())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) and doc.get("reference") == reference else None

    def write_ref(self, reference: str, top: str, digest: str) -> None:
        path = self._ref_path(reference)
        if self.read_ref(reference) == {"reference": reference, "top": top, "digest": digest}:
            return
        self._subdir("refs")
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ref.")
        with os.fdopen(fd, "w") as f:
            json.dump({"reference": reference, "top": top, "digest": digest}, f)
        os.replace(tmp, path)

    # --- building entries ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, digest: str) -> Iterator[None]:
        self.check()
        locks = self._subdir("locks")
        fd = os.open(locks / f"{_hex(digest)}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def ensure(self, digest: str, build: Callable[[Path], None]) -> bool:
        """Make sure the entry for `digest` exists, calling build(tmpdir) at most once across all processes.

        build() must fill tmpdir with rootfs/, config.json and manifest.json. Returns True when this call
        built the entry, False when it was already there (or another process built it while we waited).
        """
        if self.has(digest):
            return False
        with self.lock(digest):
            if self.has(digest):
                return False
            tmp_root = self._subdir("tmp")
            for leftover in tmp_root.glob(f"{_hex(digest)}.*"):  # a crashed builder's; we hold the lock
                remove_tree(leftover)
            remove_tree(self.entry(digest))  # an incomplete entry (no rootfs/) is not an entry
            tmp = Path(tempfile.mkdtemp(prefix=f"{_hex(digest)}.", dir=tmp_root))
            try:
                build(tmp)
                self._subdir("sha256")
                os.chmod(tmp, 0o755)
                os.rename(tmp, self.entry(digest))
            except BaseException:
                remove_tree(tmp)
                raise
            return True


def _hex(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    if algorithm != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return hexpart
