"""Stage a shard's slice of a Dataset into its workspace through a node-local, content-addressed cache.

Why a cache: the dataset lives on a shared filesystem where every open, read and stat is a network round
trip; a node that already holds a file (an earlier run, another pipeline, a retried shard) should not fetch
it again. Files are cached by content (`objects/<xx>/<xxh3-128>`), so identical files are stored once. An
index (SQLite, shared by the runners of the node) maps a source file's path, size and mtime to its content
hash: the same quick check rsync makes. A cached copy is verified while it is copied into the workspace; a
damaged one is dropped and the file fetched again.

Selection: every regular file below `source` (symlinked files followed, symlinked directories not), filtered
by `include`/`exclude` (see `api.dataset`), sorted by relative path. `shardBy: files` gives shard k the files
k, k+N, k+2N, … of that list: disjoint, together complete, and the same for every attempt of a shard while
the dataset does not change. Files keep their relative paths under the input's `path`.

A fetch reads the source once and writes the workspace file and the cache object together; many small
files are fetched by several threads at once, since each one is mostly waiting on round trips.
"""

from __future__ import annotations

import fnmatch
import os
import sqlite3
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from podline.runtime.copying import copy_hashing, direct_buffer

FETCH_THREADS = 8
BIG_FILE = 8 << 20  # above this, one file at a time is as fast (bandwidth, not round trips, is the limit)


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


@dataclass(frozen=True)
class SourceFile:
    rel: str
    path: str
    size: int
    mtime: int


# --- which files ----------------------------------------------------------------------------------------
def matches(rel: str, patterns: list[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel if "/" in p else name, p) for p in patterns)


def select(source: Path, include: list[str], exclude: list[str]) -> list[SourceFile]:
    """The dataset's files, sorted by relative path. A source that is a file is a dataset of one file."""
    st = os.stat(source)
    if stat.S_ISREG(st.st_mode):
        return [SourceFile(source.name, str(source), st.st_size, st.st_mtime_ns)]
    found: list[SourceFile] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(source / rel_dir if rel_dir else source) as entries:
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append(rel)
                elif entry.is_file():  # follows a symlink to a file
                    if (include and not matches(rel, include)) or (exclude and matches(rel, exclude)):
                        continue
                    info = entry.stat()
                    found.append(SourceFile(rel, entry.path, info.st_size, info.st_mtime_ns))
    return sorted(found, key=lambda f: f.rel)


def shard_slice(files: list[SourceFile], shard: int, shards: int, shard_by: str) -> list[SourceFile]:
    return files[shard::shards] if shard_by == "files" and shards > 1 else files


# --- the node-local cache ---------------------------------------------------------------------------------
class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "objects").mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(root / "index.db", timeout=60, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER,"
                        " hash TEXT)")

    def known(self, files: list[SourceFile]) -> dict[str, str]:
        """path -> content hash for the files whose size and mtime are as indexed."""
        out: dict[str, str] = {}
        want = {f.path: (f.size, f.mtime) for f in files}
        paths = list(want)
        for start in range(0, len(paths), 500):
            batch = paths[start:start + 500]
            rows = self.db.execute(f"SELECT path, size, mtime, hash FROM files WHERE path IN "
                                   f"({','.join('?' * len(batch))})", batch)
            out.update({p: h for p, size, mtime, h in rows if want[p] == (size, mtime)})
        return out

    def remember(self, entries: list[tuple[SourceFile, str]]) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                                [(f.path, f.size, f.mtime, h) for f, h in entries])

    def object(self, digest: str) -> Path:
        return self.root / "objects" / digest[:2] / digest

    def close(self) -> None:
        self.db.close()


# --- staging -------------------------------------------------------------------------------------------
def stage_dataset(spec: dict[str, Any], target: Path, shard: int, shards: int, cache_root: Path) -> Staged:
    """Copy this shard's slice of the dataset to `target` (a directory in the workspace)."""
    files = shard_slice(select(Path(spec["source"]), spec.get("include", []), spec.get("exclude", [])),
                        shard, shards, spec.get("shardBy", "files"))
    cache = Cache(cache_root)
    try:
        known = cache.known(files)
        staged, fetched = Staged(), []
        todo: list[SourceFile] = []
        for item in files:
            dest = target / item.rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            digest = known.get(item.path)
            if digest is not None and _from_cache(cache, digest, item, dest):
                staged.filesReused += 1
                staged.bytesReused += item.size
            else:
                todo.append(item)
        small = [f for f in todo if f.size <= BIG_FILE]
        local = threading.local()
        with ThreadPoolExecutor(FETCH_THREADS) as pool:
            fetched += pool.map(lambda f: _fetch(cache, f, target / f.rel, local), small)
        fetched += [_fetch(cache, f, target / f.rel, local) for f in todo if f.size > BIG_FILE]
        cache.remember([(f, digest) for f, digest in fetched if digest is not None])
        staged.filesCopied += len(fetched)
        staged.bytesCopied += sum(f.size for f, _ in fetched)
        return staged
    finally:
        cache.close()


def _from_cache(cache: Cache, digest: str, item: SourceFile, dest: Path) -> bool:
    """Copy a cached object into the workspace, verifying it; False (and the object gone) if it is damaged."""
    obj = cache.object(digest)
    try:
        if obj.stat().st_size == item.size and copy_hashing(obj, [(dest, False)]) == digest:
            os.utime(dest, ns=(item.mtime, item.mtime))
            return True
    except FileNotFoundError:
        return False
    obj.unlink(missing_ok=True)
    return False


def _fetch(cache: Cache, item: SourceFile, dest: Path, local: threading.local) -> tuple[SourceFile, str | None]:
    """Read the source once into the workspace and the cache. The hash is returned for the index only if the
    source did not change while it was read (else the workspace has it, the index does not)."""
    if not hasattr(local, "buffer"):
        local.buffer = direct_buffer()  # one per thread, reused for every file it fetches
    tmp = cache.root / "objects" / f".tmp-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}"
    try:
        digest = copy_hashing(Path(item.path), [(dest, False), (tmp, True)], buffer=local.buffer)
        after = os.stat(item.path)
        if (after.st_size, after.st_mtime_ns) != (item.size, item.mtime):
            return item, None
        obj = cache.object(digest)
        obj.parent.mkdir(exist_ok=True)
        os.replace(tmp, obj)
        return item, digest
    finally:
        tmp.unlink(missing_ok=True)
