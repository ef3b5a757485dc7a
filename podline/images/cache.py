"""The node-local, content-addressed image cache: one unpacked rootfs per manifest digest, built once.

Layout under the cache directory:

    sha256/<hex>/rootfs/        the unpacked image (read-only by convention: shared by every container)
    sha256/<hex>/config.json    the raw image config blob
    sha256/<hex>/manifest.json  the manifest it was built from
    refs/<sha256 of reference>.json   {"reference", "top", "digest"}: what a tag resolved to last time
    locks/<hex>.lock            flock()ed while an entry is built
    locks/<hex>.use             flock()ed shared by every process running the image (garbage collection)
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

Garbage collection follows the kubelet's image GC: after a pull, when the filesystem holding the cache is more
than `PODLINE_IMAGE_GC_HIGH_PERCENT` (default 85) full, the least recently used entries go until it is at
most `PODLINE_IMAGE_GC_LOW_PERCENT` (default 80) full. An entry in use is never collected: a process that
runs an image holds a shared flock on `locks/<hex>.use` until it exits (`hold`), and collection takes that
lock and the build lock exclusively without waiting, skipping the entry when it cannot (in use, or being
built). An entry
is collected by renaming it into tmp/ under the lock, then removing it, so no one sees half an image.
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
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import ImageError

GC_HIGH = float(os.environ.get("PODLINE_IMAGE_GC_HIGH_PERCENT", "85"))
GC_LOW = float(os.environ.get("PODLINE_IMAGE_GC_LOW_PERCENT", "80"))
USED_MARK = "used"  # in an entry: its mtime is when a process last took it into use

Usage = Callable[[Path], tuple[int, int]]  # (bytes used, bytes total) of the filesystem holding a path
_HELD: dict[Path, int] = {}  # entry -> the fd of this process's shared lock on it (released at exit)


def not_private(st: os.stat_result) -> str:
    """Why a directory (lstat) is not trustworthy as this user's own: "" when it is."""
    if stat.S_ISLNK(st.st_mode):
        return "is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid != os.getuid():
        return f"is owned by uid {st.st_uid}, not by this user (uid {os.getuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return ""


def disk_usage(path: Path) -> tuple[int, int]:
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    return total - st.f_bavail * st.f_frsize, total


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
    shutil.rmtree(path, onerror=_gone_is_fine)


def _gone_is_fine(function: object, path: str, exc_info: tuple) -> None:
    """Another process removing the same tree (a collection's leftovers) is no error."""
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


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
        problem = not_private(st)
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
        fd = self._lock_fd(digest)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _lock_fd(self, digest: str, purpose: str = "lock") -> int:
        """`lock`: held exclusively while the entry is built; `use`: held shared while processes run it. Two
        files, so that a builder waiting for the first is never stuck behind a holder of the second (a thread of
        its own process that took the image into use meanwhile)."""
        locks = self._subdir("locks")
        return os.open(locks / f"{_hex(digest)}.{purpose}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                       0o600)

    # --- use and collection ---------------------------------------------------------------------------
    def hold(self, digest: str) -> bool:
        """Mark the entry in use by this process until it exits (or `release`), and note the time of use.
        False when the entry is gone (collected since it was looked up): the caller prepares it again."""
        entry = self.entry(digest)
        if entry not in _HELD:
            fd = self._lock_fd(digest, "use")
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a collection removes it
            if not self.has(digest):
                os.close(fd)
                return False
            _HELD[entry] = fd
        with contextlib.suppress(OSError):
            (entry / USED_MARK).touch()
        return True

    def release(self, digest: str) -> None:
        fd = _HELD.pop(self.entry(digest), None)
        if fd is not None:
            os.close(fd)

    def collect(self, usage: Usage = disk_usage, high: float | None = None, low: float | None = None) -> list[str]:
        """Remove least recently used entries not in use while the disk is fuller than `high` percent, until it
        is at most `low` percent full (see the module docstring). Returns the digests removed."""
        high, low = GC_HIGH if high is None else high, GC_LOW if low is None else low
        used, total = usage(self.root)
        if not total or used * 100 <= high * total:
            return []
        self._sweep_tmp()
        removed: list[str] = []
        for entry in sorted(self._subdir("sha256").iterdir(), key=_last_use):
            if used * 100 <= low * total:
                break
            digest = f"sha256:{entry.name}"
            if entry in _HELD or not is_hex_digest(entry.name):
                continue
            fd, use_fd = self._lock_fd(digest), self._lock_fd(digest, "use")
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(use_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # being built, or in use by a running pod
                    continue
                gc_dir = self._subdir("tmp") / "gc"  # apart from tmp/<hex>.*, which builders clean up
                with contextlib.suppress(FileExistsError):
                    os.mkdir(gc_dir, 0o700)
                doomed = Path(tempfile.mkdtemp(prefix=f"{entry.name}.", dir=gc_dir))
                try:
                    os.rename(entry, doomed / "entry")
                except FileNotFoundError:  # another collection took it first
                    remove_tree(doomed)
                    continue
            finally:
                os.close(fd)
                os.close(use_fd)
            remove_tree(doomed)
            removed.append(digest)
            used, total = usage(self.root)
        return removed

    def _sweep_tmp(self) -> None:
        """What builders and collections killed midway left in tmp/: a build whose lock is free (nobody is
        building that digest), and every collection leftover older than a minute."""
        tmp_root = self._subdir("tmp")
        for leftover in tmp_root.iterdir():
            if leftover.name == "gc":
                for doomed in leftover.iterdir():
                    with contextlib.suppress(OSError):
                        if time.time() - doomed.stat().st_mtime > 60:
                            remove_tree(doomed)
                continue
            hexpart = leftover.name.split(".", 1)[0]
            if not is_hex_digest(hexpart):
                continue
            fd = self._lock_fd(f"sha256:{hexpart}")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                remove_tree(leftover)
            except BlockingIOError:
                continue  # being built now
            finally:
                os.close(fd)

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
    if algorithm != "sha256" or not is_hex_digest(hexpart):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return hexpart


def is_hex_digest(name: str) -> bool:
    """64 lowercase hex digits: a sha256 as entries, locks and store archives are named."""
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _last_use(entry: Path) -> float:
    """When a process last took the entry into use (else when it was built)."""
    for path in (entry / USED_MARK, entry):
        with contextlib.suppress(OSError):
            return path.stat().st_mtime
    return 0.0
