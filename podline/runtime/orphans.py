"""What deleted pipelines and pods left on a node: RAM workspaces, node-local L2 copies and RAM volumes.

A failed shard keeps its workspace (its L1 checkpoint) and its L2 copy for a later attempt on the same node.
On Slurm that node is out of the controller's reach, so when the pipeline is deleted they would stay for good
(a RAM workspace holds its node's memory). So would a pod's RAM-backed volumes when its runner was killed
before it could remove them (Slurm's time limit). Each one therefore names its owner — the run directory on
the shared directory, which deleting the pipeline or pod removes — and a runner starting on the node removes
those whose owner is gone. Only while the shared directory itself is there: an unmounted one must not look
like a deleted owner.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

OWNER = ".podline-owner"  # {shared directory}\n{run directory}


def claim(directory: Path, shared: str, owner: str) -> None:
    """Record who `directory` belongs to now: each attempt of a shard claims it anew (an earlier attempt's run
    directory is kept until the pipeline is deleted, so either one keeps it)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = directory / f"{OWNER}.{os.getpid()}"
    tmp.write_text(f"{shared}\n{owner}\n")
    os.replace(tmp, directory / OWNER)


def collect(roots: Iterable[Path], log: Callable[[str], None]) -> list[Path]:
    """Remove every `podline-*` directory (and checkpoints/<uid>) under `roots` whose owner is gone."""
    removed = []
    for root in roots:
        try:
            entries = list(os.scandir(root))
        except OSError:
            continue
        for entry in entries:
            path = Path(entry.path)
            owner = _orphaned(path) if entry.is_dir(follow_symlinks=False) else None
            if owner is not None:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
                log(f"removed {path}: its owner {owner} was deleted")
    return removed


def _orphaned(directory: Path) -> str | None:
    """The owner named by `directory` if that owner is gone (and the shared directory is there), else None."""
    try:
        shared, owner = (directory / OWNER).read_text().splitlines()[:2]
    except (OSError, ValueError):
        return None
    return owner if shared and os.path.isdir(shared) and not os.path.exists(owner) else None
