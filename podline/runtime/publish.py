"""Stage-out: one output of a pipeline copied from its workspace to its destination, with care for both ends.

The workspace end: the steps ran in a container, but stage-out runs on the host with the user's rights. A step
can leave a symbolic link where an output should be, or on the way to it; following it would copy out a host
file the container could not even see. So an output must lie inside the workspace with no link on the way
there, links inside it are copied as links (never followed), and what is neither a file, a directory nor a
link (a FIFO would block the copy) is left out. A link is made with `os.symlink` alone: its times are not set
(on sshfs setting them fails for a dangling link and, worse, sets its target's times).

The destination end: it may already hold other files (a results directory, a home directory). Nothing there
is deleted. A destination that does not exist yet receives the output whole and atomically: written aside,
then renamed, so it is either absent or complete. Into a directory that exists, even an empty one, the output
is merged: each file, and each subdirectory the destination lacks (whole), written aside and renamed over the
one of the same name: the directory itself is the user's (its mode and group, a mount point, a parent the user
may not write to, as on Lustre where only `run42/` is yours), so it is never replaced.

Two phases, so that several outputs appear together: `prepare` writes every copy aside (`.NAME.podline-tmp-
<pid>-<host>-<random>` beside NAME) and calls `poll` before each file, so a stop request or a give-up ends
it within a file; `Pending.commit` renames them into place; `Pending.discard` removes the copies aside that are
left (after a failure, a stop, or a rename that failed midway). Only the parent directories of a destination
are made before the renames. A runner killed while it copied (SIGKILL, a node crash) cannot remove its copies
aside: the next stage-out into the same place removes those of this host whose process is gone.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import stat
import zlib
from collections.abc import Callable
from pathlib import Path

HOST_TAG = f"{zlib.crc32(socket.gethostname().encode()):08x}"  # pids are only meaningful on their own host
_ASIDE = re.compile(r"\.(?P<name>.+)\.podline-tmp-(?P<pid>\d+)-(?:(?P<host>[0-9a-f]{8})-)?[0-9a-f]{8}")


class UnsafeOutput(OSError):
    """An output that cannot be published as it is (a link out of the workspace, a special file)."""


def inside(root: Path, rel: str) -> Path:
    """`root/rel`, if no link on the way leads out of `root` (the last component may itself be a link)."""
    path = root / rel
    real_root = os.path.realpath(root)
    parent = os.path.realpath(path.parent)
    if parent != real_root and not parent.startswith(real_root.rstrip("/") + "/"):
        raise UnsafeOutput(f"output {rel}: a symbolic link on the way leads out of the workspace")
    return path


class Pending:
    """Copies written aside, each with the place it is to be renamed to."""

    def __init__(self) -> None:
        self.moves: list[tuple[Path, Path]] = []  # (copy aside, target)
        self.done = 0  # moves committed
        self.bytes = 0

    def commit(self) -> int:
        """Rename every copy into place, in order; the bytes copied."""
        while self.done < len(self.moves):
            tmp, target = self.moves[self.done]
            os.replace(tmp, target)
            self.done += 1
        return self.bytes

    def discard(self) -> None:
        """Remove the copies aside not renamed into place (none after a complete commit)."""
        for tmp, _ in self.moves[self.done:]:
            _remove(tmp)
        self.done = len(self.moves)


def publish(source: Path, dest: Path, check: Callable[[], None]) -> int:
    """Copy `source` (a file, link or directory) to `dest`; `check` raises if the attempt was given up (it is
    called before each file copied and again before anything becomes visible). Returns the bytes copied."""
    pending = prepare(source, dest, check)
    try:
        check()
        return pending.commit()
    finally:
        pending.discard()


def prepare(source: Path, dest: Path, poll: Callable[[], None]) -> Pending:
    """Write `source` aside for `dest` (nothing visible yet); `poll` is called before each file and raises to
    stop. On any failure the copies aside made so far are removed."""
    mode = os.lstat(source).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        raise UnsafeOutput(f"output {source.name} is not a regular file, directory or link")
    dest.parent.mkdir(parents=True, exist_ok=True)
    pending = Pending()
    try:
        _remove_stale(dest.parent, {dest.name})
        if stat.S_ISDIR(mode) and (dest.is_dir() or dest.is_symlink()):
            _merge(source, dest, poll, pending)
        else:
            _put_aside(source, dest, poll, pending)
    except BaseException:
        pending.discard()
        raise
    return pending


def _aside(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.podline-tmp-{os.getpid()}-{HOST_TAG}-{secrets.token_hex(4)}")


def _put_aside(source: Path, target: Path, poll: Callable[[], None], pending: Pending) -> None:
    tmp = _aside(target)
    pending.moves.append((tmp, target))  # first: a copy that fails halfway is removed too
    pending.bytes += _copy(source, tmp, poll)


def _merge(source: Path, dest: Path, poll: Callable[[], None], pending: Pending) -> None:
    """Each file (or link) of `source` replaces the one of the same name under `dest`, a subdirectory that
    `dest` lacks is written whole; nothing is deleted."""
    todo = [(source, dest)]
    while todo:
        src_dir, target_dir = todo.pop()
        with os.scandir(src_dir) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
        fresh = []
        for entry in entries:
            mode = entry.stat(follow_symlinks=False).st_mode
            target = target_dir / entry.name
            rel = os.path.relpath(entry.path, source)
            if stat.S_ISDIR(mode) and target.is_dir():  # a link there is the user's: followed, as mkdir would
                todo.append((Path(entry.path), target))
            elif stat.S_ISDIR(mode) and os.path.lexists(target):
                raise UnsafeOutput(f"output {rel}: {target} is not a directory")
            elif stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode):
                if target.is_dir() and not target.is_symlink():
                    raise UnsafeOutput(f"output {rel}: {target} is a directory")
                fresh.append(entry)
        if fresh:
            _remove_stale(target_dir, {entry.name for entry in fresh})
        for entry in fresh:
            _put_aside(Path(entry.path), target_dir / entry.name, poll, pending)


def _copy(source: Path, tmp: Path, poll: Callable[[], None]) -> int:
    """Copy without following links; count the bytes of regular files."""
    poll()
    mode = os.lstat(source).st_mode
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(source), tmp)
        return 0
    if stat.S_ISDIR(mode):
        return _copy_tree(source, tmp, poll)
    shutil.copy2(source, tmp, follow_symlinks=False)
    return tmp.stat().st_size


def _copy_tree(source: Path, tmp: Path, poll: Callable[[], None]) -> int:
    """A directory's regular files, links (as links) and subdirectories; anything else is left out."""
    os.mkdir(tmp)
    copied = 0
    with os.scandir(source) as listing:
        entries = list(listing)
    for entry in entries:
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode):
            copied += _copy(Path(entry.path), tmp / entry.name, poll)
    shutil.copystat(source, tmp)  # after its contents, as copytree does (they change its mtime)
    return copied


def _remove_stale(directory: Path, names: set[str]) -> None:
    """Remove the copies aside for `names` in `directory` that a runner of this host left when it was killed
    (its process is gone). Another host's are left: their pid says nothing here."""
    try:
        listing = os.listdir(directory)
    except OSError:
        return
    for entry in listing:
        found = _ASIDE.fullmatch(entry)
        if found is None or found["name"] not in names or found["host"] not in (None, HOST_TAG):
            continue
        if not _alive(int(found["pid"])):
            _remove(directory / entry)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or no pid: not ours to judge
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
