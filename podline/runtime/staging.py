"""Stage a shard's slice of a Dataset into its workspace through a node-local, content-addressed cache.

Why a cache: the dataset lives on a shared filesystem where every open, read and stat is a network round
trip; a node that already holds a file (an earlier run, another pipeline, a retried shard) should not fetch
it again. Files are cached by content (`objects/<xx>/<xxh3-128>`), so identical files are stored once. An
index (SQLite, shared by the runners of the node) maps a source file's path, size, mtime and ctime to its
content hash: rsync's quick check, plus the ctime (on sshfs, whose ctime is the mtime, the quick check alone:
a same-size rewrite that keeps the mtime is not seen there; see README, Datasets). A cached copy is verified
while it is copied into the workspace; a damaged one is dropped and the file fetched again.

The cache itself, and how it is kept from filling the disk, is `runtime.dataset_cache`.

Which files make a shard's slice is `runtime.dataset_files`. Files keep their relative paths under the
input's `path`.

A fetch reads the source once and writes the workspace file and the cache object together; many small
files are fetched by several threads at once, since each one is mostly waiting on round trips.

A full cache disk does not fail a staging: its files are staged uncached (`runtime.staging_space`). What a
failed staging fetched is indexed all the same, so that a later collection can free it.

A remote source (s3://, http(s)://) is listed and read through `runtime.remote`; its files go through the
same cache, indexed by URL (and S3 endpoint) with their ETag, or Last-Modified time, as the quick check.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from podline.api.dataset import is_remote
from podline.runtime import remote as remote_files
from podline.runtime.copying import HashingSink, copy_hashing, direct_buffer
from podline.runtime.dataset_cache import Cache
from podline.runtime.dataset_files import (  # noqa: F401 - the errors and selection are also this module's API
    FETCH_THREADS,
    DatasetNotFound,
    DatasetTooLarge,
    ListedFileGone,
    SourceFile,
    StagingError,
    local_file,
    matches,
    pinned_slice,
    select,
    select_remote,
    shard_slice,
    wanted,
)
from podline.runtime.listing import DamagedListing, pinned
from podline.runtime.staging_space import NO_SPACE, allocated, index_fetched, make_room

FETCH_TRIES = 3
RACY_NS = 5 * 10**9  # a file changed less than this before its fetch is not indexed (mtimes can be whole seconds)
BIG_FILE = 8 << 20  # above this, one file at a time is as fast (bandwidth, not round trips, is the limit)
DIRECT_MIN = 1 << 20  # cache objects from this size on are written past the page cache


@dataclass
class Staged:
    """status.staging of a shard (the SPEC's field names)."""

    filesCopied: int = 0  # noqa: N815 - the status field names
    bytesCopied: int = 0  # noqa: N815
    filesReused: int = 0  # noqa: N815
    bytesReused: int = 0  # noqa: N815

    def add(self, other: Staged) -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)

    def to_json(self) -> dict[str, int]:
        return asdict(self)


# --- staging -------------------------------------------------------------------------------------------
def stage_dataset(spec: dict[str, Any], target: Path, shard: int, shards: int, cache_root: Path,
                  objects: dict[str, tuple[str, Path]] | None = None, room: int | None = None,
                  listing: Path | None = None, block: int = 1) -> Staged:
    """Copy this shard's slice of the dataset to `target` (a directory in the workspace). `objects`, if
    given, gets each staged file's path -> its content hash and the cache object holding those bytes. A
    slice larger than `room` (what the workspace's sizeLimit leaves), its files rounded up to `block` (the
    workspace filesystem's: the limit counts allocated blocks), fails before anything is copied.
    `listing`: where the shards of one pipeline keep the one file list they all slice (`runtime.listing`)."""
    include, exclude = spec.get("include", []), spec.get("exclude", [])
    try:
        remote = remote_files.connect(spec) if is_remote(spec["source"]) else None
        listed = select_remote(remote, include, exclude) if remote else select(Path(spec["source"]), include, exclude)
    except remote_files.RemoteError as exc:
        raise StagingError(str(exc)) from None
    except FileNotFoundError as exc:  # the source itself, or a file that went while it was listed (retried)
        if os.path.lexists(spec["source"]):
            raise StagingError(f"{spec['source']}: {exc.filename or exc} vanished while it was listed") from None
        what = f"dataset {spec['name']}" if spec.get("name") else "the dataset"
        raise DatasetNotFound(f"{what}: its source {spec['source']} does not exist") from None
    if listing is not None and shards > 1:
        try:
            names = pinned(listing, lambda: [f.rel for f in listed])
        except DamagedListing as exc:
            raise StagingError(f"the pipeline's listing of {spec['source']} is damaged: {exc}") from None
        files = pinned_slice(listed, names, spec, shard, shards)
    else:
        files = shard_slice(listed, shard, shards, spec.get("shardBy", "files"))
    need = sum(allocated(f.size, block) for f in files)
    if room is not None and need > room:
        blocks = f" (its files in whole {block}-byte blocks, as the sizeLimit counts them)" if block > 1 else ""
        raise DatasetTooLarge(f"the slice of {spec['source']} is {need} bytes{blocks}, above the {room} bytes the "
                              f"workspace's sizeLimit leaves")
    prefix = remote.index_prefix if remote else ""

    def key(f: SourceFile) -> str:  # in the cache's index
        return prefix + f.path

    target.mkdir(parents=True, exist_ok=True)  # a shard whose slice is empty still finds its input directory
    for parent in sorted({os.path.dirname(f.rel) for f in files}):
        (target / parent).mkdir(parents=True, exist_ok=True)
    began = time.time()
    cache = Cache(cache_root)
    done: list[tuple[SourceFile, str | None, bool]] = []  # (file, its hash if cached, reused); appended by threads
    try:
        known = cache.known({key(f): (f.size, f.stamp) for f in files if f.stamp != ""})
        local = threading.local()
        read = _read_remote(remote) if remote is not None else _read_local(local)
        cache_full = threading.Event()  # a cache write found no space: the files after it are not cached

        def one(item: SourceFile) -> None:
            dest = os.path.join(target, item.rel)
            digest = known.get(key(item))
            if digest is not None and _from_cache(cache, digest, item, dest, local):
                done.append((item, digest, True))
            else:
                done.append((*_fetch(cache, item, dest, read, cache_full), False))

        # Reuse in this thread (local copies: threads would only contend); fetch the rest with several (round
        # trips to the shared filesystem overlap), big files one at a time. Before fetching, room in the cache
        # where least recently used objects were (the reused ones, marked used now, stay).
        for f in files:
            if key(f) in known:
                one(f)
        with contextlib.suppress(sqlite3.Error):
            cache.remember([], {digest: f.size for f, digest, reused in done if reused and digest}, began)
        make_room(cache, began, sum(f.size for f in files if key(f) not in known))
        with ThreadPoolExecutor(FETCH_THREADS) as pool:
            list(pool.map(one, [f for f in files if key(f) not in known and f.size <= BIG_FILE]))
        for f in files:
            if key(f) not in known and f.size > BIG_FILE:
                one(f)
    except BaseException:
        with contextlib.suppress(OSError, sqlite3.Error):  # what was fetched before the failure: indexed, a
            index_fetched(cache, [(key(f), f.size, f.stamp, d, r) for f, d, r in done], began)  # collection frees it
        cache.close()
        raise
    try:
        uncached = index_fetched(cache, [(key(f), f.size, f.stamp, d, r) for f, d, r in done], began)
        done = [(f, None if d in uncached else d, r) for f, d, r in done]
        try:
            cache.collect(began)
        except (OSError, sqlite3.Error) as exc:  # housekeeping: the staging itself succeeded
            print(f"podline: dataset cache collection failed: {exc!r}", file=sys.stderr, flush=True)
        if objects is not None:
            objects.update({os.path.join(target, f.rel): (digest, cache.object(digest))
                            for f, digest, _ in done if digest is not None})
        staged = Staged()
        for item, _, reused in done:
            if reused:
                staged.filesReused += 1
                staged.bytesReused += item.size
            else:
                staged.filesCopied += 1
                staged.bytesCopied += item.size
        return staged
    finally:
        cache.close()


def _buffer(local: threading.local) -> mmap.mmap:
    if not hasattr(local, "buffer"):
        local.buffer = direct_buffer()  # one per thread, reused for every file it copies
    return local.buffer


def _from_cache(cache: Cache, digest: str, item: SourceFile, dest: str, local: threading.local) -> bool:
    """Copy a cached object into the workspace, verifying it; False (and the object gone) if it is damaged."""
    obj = cache.object(digest)
    try:
        if obj.stat().st_size == item.size and copy_hashing(obj, [(Path(dest), False)], buffer=_buffer(local),
                                                            keep_stat=False) == digest:
            _like_the_source(dest, item)
            return True
    except OSError as exc:  # gone, unreadable: fetched again like a damaged one
        if exc.errno in NO_SPACE:  # the workspace is full, not the object bad
            raise
    with contextlib.suppress(OSError):
        obj.unlink()
    return False


def _like_the_source(dest: str, item: SourceFile) -> None:
    """The source's permission bits and modification time (steps may look at either)."""
    os.chmod(dest, item.mode)
    if item.mtime:
        os.utime(dest, ns=(item.mtime, item.mtime))


# (item, its workspace path, a temporary cache object or None: not cached) -> the hash of what was read, and
# None when the source was unchanged throughout, else the file as it is now (to be read again)
Reader = Callable[[SourceFile, str, "Path | None"], tuple[str, "SourceFile | None"]]


def _fetch(cache: Cache, item: SourceFile, dest: str, read: Reader,
           cache_full: threading.Event) -> tuple[SourceFile, str | None]:
    """Read the source once into the workspace and the cache. A source that changed while it was read is
    read again; one that keeps changing fails the staging. The hash goes to the index only for a file whose
    quick check can be trusted: an ETag, or a modification time not within the last seconds (a same-size
    rewrite within the mtime's granularity would otherwise go unnoticed: "racily clean", as git calls it).
    A cache write that finds no space sets `cache_full` and the file is read again into the workspace alone
    (were the workspace the full one, that read fails alike)."""
    tries = 0
    while tries < FETCH_TRIES:
        tmp = None if cache_full.is_set() else \
            cache.root / "objects" / f".tmp-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}"
        try:
            began = time.time_ns()
            try:
                digest, changed = read(item, dest, tmp)
            except OSError as exc:
                if tmp is None or exc.errno not in NO_SPACE:
                    raise
                cache_full.set()
                continue
            if changed is not None:
                item = changed
                tries += 1
                continue
            _like_the_source(dest, item)
            if tmp is None or (not item.content_etag and (not item.mtime or began - item.mtime < RACY_NS)):
                return item, None
            obj = cache.object(digest)
            try:
                obj.parent.mkdir(exist_ok=True)
                os.replace(tmp, obj)
            except OSError as exc:
                if exc.errno not in NO_SPACE:
                    raise
                cache_full.set()
                return item, None
            return item, digest
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
    raise StagingError(f"{item.path} kept changing while it was staged ({FETCH_TRIES} tries)")


def _read_local(local: threading.local) -> Reader:
    """Small objects go through the page cache: a direct write per small file would wait for the disk."""
    def read(item: SourceFile, dest: str, tmp: Path | None) -> tuple[str, SourceFile | None]:
        targets = [(Path(dest), False)] + ([(tmp, item.size >= DIRECT_MIN)] if tmp is not None else [])
        try:
            digest = copy_hashing(Path(item.path), targets, buffer=_buffer(local), keep_stat=False)
            after = os.stat(item.path)
        except FileNotFoundError:
            raise StagingError(f"{item.path} vanished while it was staged") from None
        if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == (item.size, item.mtime, item.ctime):
            return digest, None
        return digest, local_file(item.rel, item.path, after)
    return read


def _read_remote(remote: remote_files.Remote) -> Reader:
    """Streamed, then asked for again: another number of bytes than listed, or a new size, ETag or
    Last-Modified, and the file is read again."""
    def read(item: SourceFile, dest: str, tmp: Path | None) -> tuple[str, SourceFile | None]:
        failed: list[OSError] = []  # a write of the sink's (no space: the caller's to handle), not the read

        def write(view: memoryview) -> None:
            try:
                sink(view)
            except OSError as exc:
                failed.append(exc)
                raise

        try:
            with HashingSink([Path(dest)] + ([tmp] if tmp is not None else [])) as sink:
                count = remote_files.read(remote, item.path, write)
                digest = sink.hexdigest()
            now = remote_files.stat(remote, item.rel, item.path)
        except remote_files.RemoteError as exc:
            if failed:
                raise failed[0] from None
            raise StagingError(str(exc)) from None
        if count == item.size and item.same_version(now.size, now.etag, now.mtime_ns):
            return digest, None
        return digest, SourceFile(item.rel, item.path, now.size, now.mtime_ns, item.mode, now.etag)
    return read
