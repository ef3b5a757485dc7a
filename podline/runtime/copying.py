"""Copying file data while hashing it (xxh3-128), for checkpoints and dataset staging.

One read of the source feeds the hash and every target (a dataset file goes to the workspace and to the
node-local cache at once). A target marked `direct` bypasses the page cache (O_DIRECT where the filesystem
allows it) when the caller passes a page-aligned `direct_buffer()`: data kept on node-local disk for later
(checkpoint copies, the dataset cache) is rarely read back soon, and new page-cache pages cost more than the
disk write itself (on this VM 2.7 s/GiB against 0.6 s/GiB direct), besides evicting what the node's steps
still read. The last, partial block is written through the cache.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import shutil
import threading
from pathlib import Path

import xxhash

CHUNK = 1 << 20
DIRECT_CHUNK = 4 << 20  # O_DIRECT writes: 4 MiB measured fastest here (1 MiB 0.70, 4 MiB 0.57, 8 MiB 0.72 s/GiB)
DIRECT_ALIGN = 4096


class Stopped(Exception):
    """A copy was abandoned on request (its result is no longer wanted)."""


def direct_buffer() -> mmap.mmap:
    """A reusable page-aligned buffer for `copy_hashing` with direct targets."""
    return mmap.mmap(-1, DIRECT_CHUNK)


def hash_file(path: Path) -> str:
    digest = xxhash.xxh3_128()
    buffer = bytearray(CHUNK)  # one buffer reused: a fresh bytes object per chunk costs page faults
    with memoryview(buffer) as view, open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


def copy_hashing(src: Path, targets: list[tuple[Path, bool]], sync: bool = False,
                 stop: threading.Event | None = None, buffer: mmap.mmap | None = None) -> str:
    """Copy `src` to every (path, direct) target (mode and times too); return the hash of what was copied.
    `sync` fsyncs the targets; `stop` abandons the copy between chunks (`Stopped`)."""
    digest = xxhash.xxh3_128()
    chunk = buffer if buffer is not None else bytearray(CHUNK)
    fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    outs: list[int] = []
    try:
        for path, direct in targets:
            outs.append(_open_target(path, direct and buffer is not None))
        with memoryview(chunk) as view:  # released even on an error: the caller closes `buffer`
            while count := os.readv(fin, [chunk]):
                if stop is not None and stop.is_set():
                    raise Stopped(str(src))
                digest.update(view[:count])
                for fout in outs:
                    _write_all(fout, view, count)
        if sync:
            for fout in outs:
                os.fsync(fout)
    finally:
        os.close(fin)
        for fout in outs:
            os.close(fout)
    for path, _ in targets:
        shutil.copystat(src, path)
    return digest.hexdigest()


def _open_target(path: Path, direct: bool) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    if direct:
        try:
            return os.open(path, flags | os.O_DIRECT, 0o600)
        except OSError as exc:  # a filesystem without O_DIRECT (tmpfs before Linux 6.6, some FUSE)
            if exc.errno != errno.EINVAL:
                raise
    return os.open(path, flags, 0o600)


def _write_all(fout: int, view: memoryview, count: int) -> None:
    if count % DIRECT_ALIGN:  # a partial block: O_DIRECT would refuse it
        flags = fcntl.fcntl(fout, fcntl.F_GETFL)
        if flags & os.O_DIRECT:
            fcntl.fcntl(fout, fcntl.F_SETFL, flags & ~os.O_DIRECT)
    written = 0
    while written < count:
        written += os.write(fout, view[written:count])
