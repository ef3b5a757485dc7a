"""Stage-out: one output of a pipeline copied from its workspace to its destination, with care for both ends.

The workspace end: the steps ran in a container, but stage-out runs on the host with the user's rights. A step
can leave a symbolic link where an output should be, or on the way to it; following it would copy out a host
file the container could not even see. So an output must lie inside the workspace with no link on the way
there, links inside it are copied as links (never followed), and what is neither a file, a directory nor a
link (a FIFO would block the copy) is left out.

The destination end: it may already hold other files (a results directory, a home directory). Nothing there
is deleted. A destination that does not exist yet receives the output whole and atomically: written aside,
then renamed, so it is either absent or complete. Into a directory that exists, even an empty one, the output
is merged file by file, each written aside and renamed over a file of the same name: the directory itself is
the user's (its mode and group, a mount point, a parent the user may not write to, as on Lustre where only
`run42/` is yours), so it is never replaced.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path


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


def publish(source: Path, dest: Path, check: Callable[[], None]) -> int:
    """Copy `source` (a file, link or directory) to `dest`; `check` raises if the attempt was given up (it is
    called again before anything becomes visible). Returns the bytes copied."""
    mode = os.lstat(source).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        raise UnsafeOutput(f"output {source.name} is not a regular file, directory or link")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if stat.S_ISDIR(mode) and (dest.is_dir() or dest.is_symlink()):
        return _merge(source, dest, check)
    return _replace(source, dest, check)


def _aside(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.podline-tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _replace(source: Path, dest: Path, check: Callable[[], None]) -> int:
    """Written aside, then renamed into place."""
    tmp = _aside(dest)
    try:
        copied = _copy(source, tmp)
        check()
        os.replace(tmp, dest)
        return copied
    finally:
        _remove(tmp)


def _merge(source: Path, dest: Path, check: Callable[[], None]) -> int:
    """Each file (or link) of `source` replaces the one of the same name under `dest`; nothing is deleted."""
    copied = 0
    for root, dirs, files in os.walk(source):
        rel = os.path.relpath(root, source)
        target_dir = dest / rel if rel != "." else dest
        target_dir.mkdir(parents=True, exist_ok=True)
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        dirs[:] = [d for d in dirs if d not in links]  # a link to a directory is copied as a link
        for name in [*files, *links]:
            src = Path(root) / name
            if not (stat.S_ISREG(os.lstat(src).st_mode) or src.is_symlink()):
                continue
            target = target_dir / name
            if target.is_dir() and not target.is_symlink():
                raise UnsafeOutput(f"output {os.path.join(rel, name)}: {target} is a directory")
            copied += _replace(src, target, check)
    return copied


def _copy(source: Path, tmp: Path) -> int:
    """Copy without following links; count the bytes of regular files."""
    if source.is_symlink():
        os.symlink(os.readlink(source), tmp)
        return 0
    if source.is_dir():
        total = [0]

        def regular_only(src: str, dst: str) -> None:
            st = os.lstat(src)
            if stat.S_ISREG(st.st_mode):
                shutil.copy2(src, dst, follow_symlinks=False)
                total[0] += st.st_size

        shutil.copytree(source, tmp, symlinks=True, copy_function=regular_only)
        return total[0]
    shutil.copy2(source, tmp, follow_symlinks=False)
    return tmp.stat().st_size


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
