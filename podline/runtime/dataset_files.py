"""Which files of a dataset a shard stages: the selection and the slicing, and the errors of a staging.

Selection: every regular file below `source` (symlinked files followed, symlinked directories not), filtered
by `include`/`exclude` (see `api.dataset`), sorted by relative path. `shardBy: files` gives shard k the files
k, k+N, k+2N, … of that list: disjoint, together complete, and the same for every attempt of a shard while
the dataset does not change; a pipeline's shards slice one pinned listing (`runtime.listing`). Copying the
chosen files through the node's cache is `runtime.staging`.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from podline.api.dataset import is_remote
from podline.runtime import remote as remote_files

T = TypeVar("T")

FETCH_THREADS = 8  # directories listed (and files fetched) at once: each is mostly waiting on round trips


class StagingError(Exception):
    """A dataset could not be staged (a file kept changing, or vanished): the shard fails with this message."""


class ListedFileGone(StagingError):
    """A file of the pipeline's pinned listing is no longer in the source: no new attempt would find it."""


class DatasetNotFound(StagingError):
    """The dataset's source does not exist when the shard stages (a typo, most often): the shard fails once
    rather than a new attempt (a new Slurm job) each back-off until backoffLimit; apply again to retry."""


class DatasetTooLarge(StagingError):
    """The shard's slice can never fit what the workspace's sizeLimit leaves: no new attempt would fit it."""


@dataclass(frozen=True)
class SourceFile:
    rel: str
    path: str  # or, for a remote source, the file's URL
    size: int
    mtime: int  # ns; 0 when a remote file's is unknown
    mode: int = 0o644
    etag: str = ""  # a remote file's, when its server sends one
    ctime: int = 0  # ns, a local file's: a same-size rewrite that keeps the mtime (cp -p, rsync -t, tar x) moves it

    @property
    def stamp(self) -> int | str:
        """What must be unchanged for an indexed hash to hold: mtime and ctime for a local file (rsync's quick
        check looks at the mtime alone, and misses a same-size rewrite that puts the old mtime back; nobody can
        set a ctime back); for a remote one its ETag and Last-Modified ("" when it has neither: never
        indexed)."""
        if is_remote(self.path):
            return "|".join(filter(None, (self.etag, f"t{self.mtime}" if self.mtime else "")))
        return f"{self.mtime}/{self.ctime}"

    @property
    def content_etag(self) -> bool:
        """An ETag that changes whenever the content does: S3's (a digest of the bytes). A web server's may
        be weak (`W/`) or made of the mtime in seconds and the size (nginx), so it proves nothing alone."""
        return bool(self.etag) and self.path.startswith("s3://") and not self.etag.startswith("W/")

    def same_version(self, size: int, etag: str, mtime: int) -> bool:
        """Is a later look at the file the same version? By size and ETag when it has one (S3-compatible stores
        may list times in milliseconds and give whole seconds for the object), else size and mtime."""
        if self.etag:
            return (size, etag) == (self.size, self.etag)
        return (size, mtime) == (self.size, self.mtime)


# --- which files ----------------------------------------------------------------------------------------
def matches(rel: str, patterns: list[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel if "/" in p else name, p) for p in patterns)


def wanted(rel: str, include: list[str], exclude: list[str]) -> bool:
    """Part of the dataset: no include means every file; exclude wins over include."""
    return not ((include and not matches(rel, include)) or (exclude and matches(rel, exclude)))


def select(source: Path, include: list[str], exclude: list[str]) -> list[SourceFile]:
    """The dataset's files, sorted by relative path. A source that is a file is a dataset of one file.

    Directories are listed by several threads, a level at a time: on a network filesystem each entry's type
    and size cost a round trip (sshfs gives no file types with its listings)."""
    st = os.stat(source)
    if stat.S_ISREG(st.st_mode):
        return [local_file(source.name, str(source), st)] if wanted(source.name, include, exclude) else []
    found: list[SourceFile] = []
    level = [""]
    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        while level:
            listed = list(pool.map(lambda rel_dir: _list(source, rel_dir, include, exclude), level))
            level = [d for _, dirs in listed for d in dirs]
            found += [f for files, _ in listed for f in files]
    return sorted(found, key=lambda f: f.rel)


def _list(source: Path, rel_dir: str, include: list[str], exclude: list[str]) -> tuple[list[SourceFile], list[str]]:
    files: list[SourceFile] = []
    dirs: list[str] = []
    with os.scandir(source / rel_dir if rel_dir else source) as entries:
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.is_dir(follow_symlinks=False):
                dirs.append(rel)
            elif entry.is_file():  # follows a symlink to a file
                if not wanted(rel, include, exclude):
                    continue
                files.append(local_file(rel, entry.path, entry.stat()))
    return files, dirs


def local_file(rel: str, path: str, info: os.stat_result) -> SourceFile:
    return SourceFile(rel, path, info.st_size, info.st_mtime_ns, stat.S_IMODE(info.st_mode), ctime=info.st_ctime_ns)


def select_remote(remote: remote_files.Remote, include: list[str], exclude: list[str]) -> list[SourceFile]:
    listed = remote_files.list_files(remote, lambda rel: wanted(rel, include, exclude))
    return [SourceFile(f.rel, f.url, f.size, f.mtime_ns, 0o644, f.etag) for f in listed]


def shard_slice(files: list[T], shard: int, shards: int, shard_by: str) -> list[T]:
    return files[shard::shards] if shard_by == "files" and shards > 1 else files


def pinned_slice(listed: list[SourceFile], names: list[str], spec: dict[str, Any], shard: int,
                  shards: int) -> list[SourceFile]:
    """This shard's slice of the pipeline's pinned listing (`runtime.listing`), as the source has those files
    now. A file of the slice that is gone fails the staging: the other shards' slices must not move."""
    now = {f.rel: f for f in listed}
    mine = shard_slice(names, shard, shards, spec.get("shardBy", "files"))
    gone = [rel for rel in mine if rel not in now]
    if gone:
        raise ListedFileGone(f"{spec['source']}: {gone[0]} is in this pipeline's listing of the dataset (taken "
                           f"when its first shard started) but no longer in the source")
    return [now[rel] for rel in mine]
