"""Removing a deleted object's directories without holding up the reconcile loop.

A pipeline's workspaces and checkpoints can hold hundreds of thousands of files on a local or shared disk;
removing them took the controller a minute in the middle of a pass (every other object waited, and so did
`podline delete`). So a directory is renamed aside at once — a sibling `.NAME.podline-trash-XXXXXXXX` on the
same filesystem, so the rename is instant and the name is free again — and one background thread removes
what was put aside. A controller that stops before that is done leaves the aside directories; the next
discard into the same parent removes them too.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import threading
import uuid
from pathlib import Path

MARK = ".podline-trash-"
_pending: queue.SimpleQueue[tuple[Path | None, Path | None]] = queue.SimpleQueue()
_started = threading.Lock()
_worker: list[threading.Thread] = []
_swept: set[Path] = set()  # parents already searched for an earlier controller's leftovers


def discard(target: Path, then_rmdir: Path | None = None) -> None:
    """Take `target` out of the way now and remove it in the background; then `then_rmdir` if it is empty."""
    sweep(target.parent)  # before this rename: what it finds is an earlier controller's
    aside: Path | None = target.parent / f".{target.name}{MARK}{uuid.uuid4().hex[:8]}"
    try:
        os.rename(target, aside)  # type: ignore[arg-type]
    except FileNotFoundError:
        aside = None
    except OSError:  # not renamable (a mount point, a read-only parent): removed here, as before
        shutil.rmtree(target, ignore_errors=True)
        aside = None
    if aside is not None or then_rmdir is not None:
        _pending.put((aside, then_rmdir))
        _ensure_worker()


def sweep(parent: Path) -> None:
    """Remove, in the background, what an earlier controller put aside in `parent` (at start for the RAM
    directory, whose leftovers hold memory; before each discard for its parent)."""
    leftovers = _leftovers(parent)
    for leftover in leftovers:
        _pending.put((leftover, None))
    if leftovers:
        _ensure_worker()


def _leftovers(parent: Path) -> list[Path]:
    """Directories an earlier controller put aside in `parent` and did not get to remove (searched once per
    parent and process: a parent such as /dev/shm holds many entries)."""
    if parent in _swept:
        return []
    _swept.add(parent)
    try:
        names = [e.name for e in os.scandir(parent) if MARK in e.name and e.name.startswith(".")]
    except OSError:
        return []
    return [parent / n for n in names]


def _remove(aside: Path | None, parent: Path | None) -> None:
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    if parent is not None:
        with contextlib.suppress(OSError):  # not empty: something of that name is back
            parent.rmdir()


def _run() -> None:
    while True:
        _remove(*_pending.get())


def _ensure_worker() -> None:
    with _started:
        if not _worker or not _worker[0].is_alive():
            thread = threading.Thread(target=_run, name="podline-trash", daemon=True)
            thread.start()
            _worker[:] = [thread]
