"""One listing of a dataset per pipeline, shared by all its shards.

Shards take slices of the dataset's sorted file list (round robin). Each shard staging from its own listing
would slice different lists as soon as the source changed between two shards' starts (a file added shifts
every later file to another shard): files processed twice, others never. On Slurm the tasks of one array
start minutes apart, and a shard retried later lists again. So the first shard to list writes its listing to
the pipeline's directory on shared storage and every shard (and every retry) slices that one. It pins which
files make the dataset, not their versions: each shard still lists the source to read its files as they are.

The first writer wins by a hard link of its complete file to the listing's name (atomic, and refused when
the name exists, on local filesystems, Lustre, NFS and sshfs alike); the others read what won. A filesystem
without hard links falls back to rename-if-absent, which two shards listing at the same moment can race.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

Entries = list[Any]


def pinned(path: Path, take: Callable[[], Entries]) -> Entries:
    """The listing kept at `path` (a JSON list); taken with `take` and kept there if there is none yet."""
    found = _read(path)
    if found is not None:
        return found
    listed = take()
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    with open(aside, "w") as out:
        json.dump(listed, out)
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(aside, path)
    except FileExistsError:
        pass  # another shard was first: its listing counts
    except OSError:  # no hard links here
        if not path.exists():
            os.replace(aside, path)
    finally:
        aside.unlink(missing_ok=True)
    won = _read(path)
    return listed if won is None else won


def _read(path: Path) -> Entries | None:
    try:
        with open(path) as f:
            entries = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # written whole before its link: damaged since, by the filesystem
        raise DamagedListing(f"{path}: {exc}") from None
    if not isinstance(entries, list):
        raise DamagedListing(f"{path}: not a list")
    return entries


class DamagedListing(Exception):
    """The pipeline's listing cannot be read: its shards cannot know their slices (delete and re-apply)."""
