"""Room for staged files: what they will use in the workspace, and room for them in the node-local cache.

A workspace's sizeLimit is enforced on allocated blocks (`files.tree_size`, as `du` and the kubelet count), so
the stage-in pre-checks count each file rounded up to the workspace filesystem's block size (`f_frsize`): 400
files of 8 bytes take 400 pages of a RAM workspace, not 3 KB. The check errs on the side of refusing: a sparse
file (its holes stay holes) or a file small enough to live in its inode (ext4 inline data) may take less.

A `source` input is measured as `shutil.copytree` copies it: symlinks to files and to directories followed.

The dataset cache is collected after a staging (`runtime.dataset_cache`); a staging whose files would not fit
on the cache's disk collects first, as if they were there already. A cache write that fails for want of
space (ENOSPC, EDQUOT) only means the file is not cached: it is staged into the workspace all the same.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
from pathlib import Path

from podline.runtime import dataset_cache
from podline.runtime.dataset_cache import Cache
from podline.runtime.dataset_files import DatasetTooLarge

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def block_size(path: Path) -> int:
    """The allocation unit of the filesystem holding `path` (or that would hold it: its nearest existing
    parent)."""
    for candidate in (path, *path.parents):
        try:
            return os.statvfs(candidate).f_frsize or 1
        except (FileNotFoundError, NotADirectoryError):
            continue
    return 1


def allocated(size: int, block: int) -> int:
    """`size` bytes rounded up to whole blocks."""
    return -(-size // block) * block


def source_size(source: Path, block: int) -> int:
    """The bytes a `source` input will take in the workspace, its files rounded up to `block`, walked as
    `shutil.copytree` copies it (a symlinked directory is copied, so counted; a dangling link is not). A
    symlink to a directory above it would be copied again and again: OSError ELOOP before anything is."""
    if not source.is_dir():
        return allocated(source.stat().st_size, block)
    total = 0
    stack: list[tuple[str, frozenset[tuple[int, int]]]] = [(str(source), frozenset())]
    while stack:
        directory, above = stack.pop()
        st = os.stat(directory)
        if (st.st_dev, st.st_ino) in above:
            raise OSError(errno.ELOOP, f"{directory} links to a directory above it (a copy would never end)")
        above = above | {(st.st_dev, st.st_ino)}
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    if entry.is_dir():  # follows a symlink, as copytree does
                        stack.append((entry.path, above))
                    elif entry.is_file():
                        total += allocated(entry.stat().st_size, block)
                except FileNotFoundError:  # a dangling link: copytree fails on it, after the rest
                    continue
    return total


def make_room(cache: Cache, since: float, need: int) -> None:
    """Before `need` bytes are fetched into the cache: collect as if they were there already (objects used at
    or after `since`, this staging's, stay). A failure is logged: the fetch then caches what fits."""
    if need <= 0:
        return
    try:
        used, total = dataset_cache.disk_usage(cache.root)
        cache.collect(since, usage=lambda _: (used + need, total))
    except (OSError, sqlite3.Error) as exc:
        print(f"podline: dataset cache collection failed: {exc!r}", file=sys.stderr, flush=True)


def index_fetched(cache: Cache, done: list[tuple[str, int, int | str, str | None, bool]], began: float) -> set[str]:
    """Index a staging's files ((index key, size, stamp, hash or None when not cached, reused)) and mark their
    objects used at `began`. An index that cannot be written (its disk full) leaves the fetched files
    uncached: their objects go (nobody could tell when they were last used); returns those hashes."""
    fetched = [(path, size, stamp, digest) for path, size, stamp, digest, reused in done if digest and not reused]
    try:
        cache.remember(fetched, {digest: size for _, size, _, digest, _ in done if digest is not None}, began)
    except sqlite3.Error as exc:
        print(f"podline: dataset cache index not written, the files stay uncached: {exc!r}", file=sys.stderr,
              flush=True)
        gone = {digest for *_, digest in fetched} - {digest for *_, digest, reused in done if reused}
        for digest in gone:
            cache.object(digest).unlink(missing_ok=True)
        return gone
    return set()


def fits_room(source: Path, room: int, block: int = 1) -> int:
    """The bytes of a `source` input, if they fit in `room` (what the workspace's sizeLimit leaves); else the
    shard fails before anything is copied (a dataset far larger than the workspace would fill the RAM first).
    Measured as the copy will make it (symlinked directories followed), each file in whole `block`s (the
    workspace filesystem's: the sizeLimit counts allocated blocks); see `runtime.staging_space`."""
    need = source_size(source, block)
    if need > room:
        blocks = f" (its files in whole {block}-byte blocks, as the sizeLimit counts them)" if block > 1 else ""
        raise DatasetTooLarge(f"{source} is {need} bytes{blocks}, above the {room} bytes the workspace's "
                              "sizeLimit leaves")
    return need
