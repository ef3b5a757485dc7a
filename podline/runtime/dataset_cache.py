"""The node-local, content-addressed cache of dataset files, and what keeps it from filling the node's disk.

Layout under `<scratch>/datasets`: `objects/<xx>/<xxh3-128>` (one file per content, so identical files are
stored once), `index.db` (SQLite, shared by the runners of the node, WAL) with two tables:
  files    a source file's path, size and stamp (mtime/ctime, or a remote file's ETag) -> its content hash
  objects  content hash -> size and when a staging last used it
and `index.lock`, a flock taken to switch a new index to WAL and to collect garbage.

Garbage collection follows the kubelet's image GC: after a staging, when the filesystem holding the cache is
more than `PODLINE_DATASET_CACHE_GC_HIGH_PERCENT` (default 85) full, the least recently used objects go until it
is at most `PODLINE_DATASET_CACHE_GC_LOW_PERCENT` (default 80) full. Objects the staging just used stay; an
object another runner is about to copy may go, and that runner fetches the file again (a cache miss, never a
wrong file: a cached copy is verified as it is copied). Temporary files of fetches that died with their
runner (`objects/.tmp-*`, untouched for an hour) are removed at the same time, and so are objects with no
row (their staging died before recording them) untouched for an hour, when the disk is over the mark.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

GC_HIGH = float(os.environ.get("PODLINE_DATASET_CACHE_GC_HIGH_PERCENT", "85"))
GC_LOW = float(os.environ.get("PODLINE_DATASET_CACHE_GC_LOW_PERCENT", "80"))
STALE_TMP_SECONDS = 3600
BATCH = 500

Usage = Callable[[Path], tuple[int, int]]  # (bytes used, bytes total) of the filesystem holding a path


def disk_usage(path: Path) -> tuple[int, int]:
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    return total - st.f_bavail * st.f_frsize, total


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "objects").mkdir(parents=True, exist_ok=True)
        with self._locked():  # the tasks of an array may all open a new index at once: switching it to WAL
            self.db = sqlite3.connect(root / "index.db", timeout=60, isolation_level=None,  # does not wait
                                      check_same_thread=False)  # for a busy database
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER,"
                            " hash TEXT)")
            self.db.execute("CREATE TABLE IF NOT EXISTS objects (hash TEXT PRIMARY KEY, size INTEGER, used REAL)")
            self.db.execute("CREATE INDEX IF NOT EXISTS files_hash ON files(hash)")  # eviction deletes by hash

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / "index.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def known(self, paths: dict[str, tuple[int, int]]) -> dict[str, str]:
        """path -> content hash for the source files (path -> size, mtime) whose size and mtime are as indexed."""
        out: dict[str, str] = {}
        names = list(paths)
        for start in range(0, len(names), BATCH):
            batch = names[start:start + BATCH]
            rows = self.db.execute(f"SELECT path, size, mtime, hash FROM files WHERE path IN "
                                   f"({','.join('?' * len(batch))})", batch)
            out.update({p: h for p, size, mtime, h in rows if paths[p] == (size, mtime)})
        return out

    def remember(self, fetched: list[tuple[str, int, int, str]], used: dict[str, int], when: float) -> None:
        """Index the fetched files (path, size, mtime, hash) and mark the objects used (hash -> size) at `when`."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", fetched)
            self.db.executemany("INSERT INTO objects VALUES (?, ?, ?) ON CONFLICT(hash) DO UPDATE SET "
                                "used = max(used, excluded.used)",  # a staging that began earlier ends later
                                [(digest, size, when) for digest, size in used.items()])

    def object(self, digest: str) -> Path:
        return self.root / "objects" / digest[:2] / digest

    def collect(self, since: float, usage: Usage = disk_usage, high: float | None = None,
                low: float | None = None) -> int:
        """Free the disk when it is fuller than `high` percent (see the module docstring); objects used at or
        after `since` are kept. Returns the bytes freed."""
        high, low = GC_HIGH if high is None else high, GC_LOW if low is None else low
        self._remove_stale_tmp()
        used, total = usage(self.root)
        if not total or used * 100 <= high * total:
            return 0
        with self._locked():
            freed = self._remove_orphans()
            rows = self.db.execute("SELECT hash, size FROM objects WHERE used < ? ORDER BY used", (since,)).fetchall()
            gone: list[str] = []
            for digest, size in rows:
                if used - freed <= low * total / 100:
                    break
                gone.append(digest)
                with contextlib.suppress(FileNotFoundError):
                    path = self.object(digest)
                    links = path.stat().st_nlink  # an L2 checkpoint may link it: unlinking frees nothing then
                    path.unlink()
                    freed += size if links == 1 else 0
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany("DELETE FROM objects WHERE hash = ?", [(d,) for d in gone])
                self.db.executemany("DELETE FROM files WHERE hash = ?", [(d,) for d in gone])
        return freed

    def _remove_orphans(self) -> int:
        """Objects without a row (their staging died before it recorded them, or the cache predates the
        table), untouched for an hour: nobody can tell when they were last used, so they go first."""
        recorded = {h for (h,) in self.db.execute("SELECT hash FROM objects")}
        cutoff, freed = time.time() - STALE_TMP_SECONDS, 0
        for path in (self.root / "objects").glob("??/*"):
            with contextlib.suppress(OSError):
                st = path.stat()
                if path.name not in recorded and st.st_mtime < cutoff:
                    path.unlink()
                    freed += st.st_size if st.st_nlink == 1 else 0
        return freed

    def _remove_stale_tmp(self) -> None:
        cutoff = time.time() - STALE_TMP_SECONDS
        with os.scandir(self.root / "objects") as entries:
            for entry in entries:
                if entry.name.startswith(".tmp-"):
                    with contextlib.suppress(OSError):
                        if entry.stat().st_mtime < cutoff:
                            os.unlink(entry.path)

    def close(self) -> None:
        self.db.close()
