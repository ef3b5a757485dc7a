"""Multi-level checkpoints of a pipeline workspace: what was there after which steps, and getting it back.

L1 is the workspace itself plus `l1.json`, a manifest of (size, mtime, inode, mode, ctime) per file, each
directory's mode, symlinks and named pipes, written after each step: cheap to write, and after a crash it
tells whether the workspace still is what the last finished step left (a killed step that touched a file
changes its mtime and ctime; one that chmod-ed it, its mode). L2
(node-local disk) and L3 (shared storage) are copies: `<level root>/<seq>/data/...` plus `manifest.json`
with each file's size and xxh3 hash. A copy is written aside and renamed into place, so a crash
mid-checkpoint leaves the previous one valid; files unchanged since the previous copy at that level are
hard links to it (checkpoint directories are never modified once renamed, so sharing inodes between them
is safe; on L3 a file is linked only once its bytes were read back, see `ReadBack`). Only the newest copy
per level is kept. Restoring verifies every byte it copies against the manifest's hash, and the manifest
against its own hash (see `checkpoint_manifest`): a corrupted copy raises `Corrupt` and the caller falls
back to the next level. Copies hold no FIFOs (only their names, in the manifest: a restore makes them) and
each hard-link group's bytes once (a restore links the other names again).

A copy may be written while later steps already run (L2, see `runtime.copier`): it is then checked against
hashes taken at the checkpoint itself (`expected`), and a file a running step changed meanwhile makes the
copy `Torn`: it is dropped, never renamed into place, and the previous copy stays the newest. A file that
cannot be read because a running step moved, removed, replaced or chmod-ed it (or a directory above it) is
torn the same way: the checkpoint's state is no longer there to copy.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import stat
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from podline.runtime.checkpoint_manifest import ReadBack, Snapshot, link_groups, opened, read_back, sealed
from podline.runtime.copying import CHUNK, DIRECT_CHUNK, Stopped, copy_hashing, direct_buffer, hash_file
from podline.runtime.files import read_json, write_json_atomic

Sources = dict[str, tuple[str, Path]]  # workspace file -> (hash, a file elsewhere with exactly those bytes)
CLOCK_REALTIME_COARSE = 5  # Linux's clockid for the clock file times come from (not in Python's `time`)

__all__ = ["CHUNK", "DIRECT_CHUNK", "Corrupt", "Snapshot", "Stopped", "Torn", "hash_file", "newest", "restore_copy",
           "save_copy", "take_l1"]


class Corrupt(Exception):
    """A checkpoint copy does not match its manifest (missing file, wrong size or hash)."""


class Torn(Exception):
    """A workspace file changed while it was being copied: the copy would not be the checkpoint's state."""


class Tree(NamedTuple):
    """What `scan` finds below a workspace, by relative path (sockets and devices are not kept)."""

    files: dict[str, dict[str, Any]]
    dirs: list[str]
    links: dict[str, str]
    dir_modes: dict[str, int]
    fifos: list[str]
    hardlinks: dict[str, str]  # names sharing an inode -> the first of them (see checkpoint_manifest)


def scan(root: Path) -> Tree:
    """Regular files (with stat identity), directories (with their modes), symlinks, FIFOs and hard-link
    groups below `root`."""
    files: dict[str, dict[str, Any]] = {}
    dirs: list[str] = []
    links: dict[str, str] = {}
    dir_modes: dict[str, int] = {}
    fifos: list[str] = []
    inodes: dict[tuple[int, int], list[str]] = {}
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(root / rel_dir if rel_dir else root) as entries:
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_symlink():
                    links[rel] = os.readlink(entry.path)
                elif entry.is_dir():
                    dirs.append(rel)
                    stack.append(rel)
                    dir_modes[rel] = stat.S_IMODE(entry.stat().st_mode)
                elif entry.is_file():
                    st = entry.stat()
                    files[rel] = {"size": st.st_size, "mtime": st.st_mtime_ns, "ino": st.st_ino,
                                  "mode": stat.S_IMODE(st.st_mode), "ctime": st.st_ctime_ns}
                    if st.st_nlink > 1:
                        inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
                elif stat.S_ISFIFO(entry.stat(follow_symlinks=False).st_mode):
                    fifos.append(rel)
    return Tree(files, sorted(dirs), links, dir_modes, sorted(fifos), link_groups(inodes))


def take_l1(workspace: Path, seq: int, steps: list[str]) -> Snapshot:
    """The workspace's manifest now (nothing runs in it while this is taken)."""
    tree = scan(workspace)
    _unrace(workspace, tree.files)
    return Snapshot(seq, steps, tree.files, tree.dirs, tree.links, tree.dir_modes, tree.fifos, tree.hardlinks)


def _unrace(workspace: Path, files: dict[str, dict[str, Any]]) -> None:
    """Make a later same-size rewrite of a file visible to the (size, mtime, inode) check.

    The kernel stamps file times from a coarse clock (ticks of 1-10 ms): a file the step wrote during the
    current tick has exactly that tick's time, and would keep it if the next step rewrote it within the same
    tick; a rewind would then trust the damaged file ("racy git"). Such files get their mtime set 1 ns back,
    below any time a later write can get (their order among the workspace's other files does not change:
    those are at least a tick older). A time past the tick's start is a fine-grained one: kernels with
    multigrain timestamps (6.13 on) give a file stat'ed since its last change a distinct time by themselves."""
    tick = time.clock_gettime_ns(CLOCK_REALTIME_COARSE)
    done: dict[int, os.stat_result] = {}  # inode -> its stat after the change: a hard link's names share one
    for rel, rec in files.items():
        if rec["mtime"] == tick:
            path = workspace / rel
            with contextlib.suppress(OSError):  # cannot: this one file stays racy, as before
                if rec["ino"] not in done:
                    os.utime(path, ns=(os.stat(path).st_atime_ns, tick - 1))
                    done[rec["ino"]] = os.stat(path)
                after = done[rec["ino"]]  # (a second utime through another name would move the ctime again)
                rec["mtime"], rec["ctime"] = after.st_mtime_ns, after.st_ctime_ns


def l1_matches(workspace: Path, snap: Snapshot) -> bool:
    """True when the workspace holds exactly what `snap` recorded (extra entries are removed first).

    Every entry keeps its type (a file replaced by a symlink, a directory or a FIFO is not there as a file;
    symlinks must point where they did) and every file its identity, mode and ctime: `chmod` changes no
    mtime, so a failed step that only made a tool unexecutable would otherwise be trusted; and `touch -r`,
    `cp -p`, `tar x` or `rsync -t` put an old mtime back on new bytes, but nothing can set a ctime (any change
    moves it to now). L2 and L3 put contents and modes back."""
    tree = scan(workspace)
    if tree.links != snap.links or not set(snap.dirs) <= set(tree.dirs) or not set(snap.fifos) <= set(tree.fifos):
        return False
    if any(tree.dir_modes.get(rel) != mode for rel, mode in snap.dir_modes.items()):
        return False
    if not all(_same_file(tree.files.get(rel), rec) for rel, rec in snap.files.items()):
        return False
    _remove_extra(workspace, snap, tree)
    return True


def _same_file(now: dict[str, Any] | None, rec: dict[str, Any]) -> bool:
    """A regular file with the recorded size, mtime, inode, mode and ctime (an older manifest without modes or
    ctimes: those not compared)."""
    if now is None or (now["size"], now["mtime"], now["ino"]) != (rec["size"], rec["mtime"], rec["ino"]):
        return False
    return now["mode"] == rec.get("mode", now["mode"]) and now["ctime"] == rec.get("ctime", now["ctime"])


def _remove_extra(workspace: Path, snap: Snapshot, tree: Tree) -> None:
    for rel in [*tree.files, *tree.fifos]:
        if rel not in snap.files and rel not in snap.fifos:
            (workspace / rel).unlink(missing_ok=True)
    keep = set(snap.dirs)
    for rel in sorted(tree.dirs, key=len, reverse=True):
        if rel not in keep:
            shutil.rmtree(workspace / rel, ignore_errors=True)


def _copy_hashing(src: Path, dst: Path, sync: bool, stop: threading.Event | None = None,
                  buffer: mmap.mmap | None = None, limit: int | None = None) -> str:
    """One checkpoint file: through the page cache, or past it when the caller passes a direct buffer."""
    return copy_hashing(src, [(dst, buffer is not None)], sync, stop, buffer, limit=limit)


def newest(level_root: Path) -> tuple[Path, Snapshot] | None:
    """The newest complete copy at a level (renamed into place, manifest readable), if any. A manifest that
    fails its own hash comes back with its `problem` set: `restore_copy` refuses it (see checkpoint_manifest)."""
    try:
        names = [n for n in os.listdir(level_root) if n.isdigit()]
    except OSError:
        return None
    for name in sorted(names, key=int, reverse=True):
        snap = opened(read_json(level_root / name / "manifest.json"))
        if snap is not None:
            return level_root / name, snap
    return None


def save_copy(workspace: Path, level_root: Path, snap: Snapshot, durable: bool,
              expected: dict[str, str] | None = None, stop: threading.Event | None = None,
              sources: Sources | None = None) -> int:
    """Copy the workspace as checkpoint `snap.seq` at this level; return the bytes actually written.

    `durable` (L3 on shared storage) fsyncs each copied file and the manifest before the rename, and links a
    file from the previous copy only once its bytes were read back (`ReadBack`). `expected` (file -> hash at
    the checkpoint) makes a file that no longer hashes the same raise `Torn`;
    `stop` abandons the copy (`Stopped`). Either way nothing is renamed into place. `sources` (file ->
    hash and a file elsewhere holding exactly those bytes, never modified: a dataset cache object) are hard
    links to those when the file's hash at the checkpoint is that one and the link can be made.
    """
    level_root.mkdir(parents=True, exist_ok=True)
    previous = newest(level_root)
    if previous is not None and previous[1].problem:
        previous = None  # nothing is linked from a copy whose manifest cannot be trusted
    check = read_back(level_root, previous[0] if previous else None) if durable else None
    tmp = level_root / f".tmp-{snap.seq}-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        files, written = _fill(workspace, tmp / "data", snap, previous, (durable, check), expected, stop,
                               sources or {})
        write_json_atomic(tmp / "manifest.json", sealed(replace(snap, files=files, problem=None)))
        if durable:
            _fsync_path(tmp / "manifest.json")
        final = level_root / str(snap.seq)
        if final.exists():  # a stale copy of a discarded future (restore removed what it could not trust)
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if durable:
        _fsync_path(level_root)
    if check is not None:
        check.remember(level_root, final)
    for name in os.listdir(level_root):  # only the newest copy is kept (older ones may share its inodes)
        if name != str(snap.seq):  # one writer per level: a leftover .tmp-* is a crashed attempt's
            shutil.rmtree(level_root / name, ignore_errors=True)
    return written


def _fill(workspace: Path, data: Path, snap: Snapshot, previous: tuple[Path, Snapshot] | None,
          how: tuple[bool, ReadBack | None], expected: dict[str, str] | None, stop: threading.Event | None,
          sources: Sources) -> tuple[dict[str, Any], int]:
    """The copy's data directory; files unchanged since the previous copy are hard links to it (read back
    first with `check`), and so are files whose bytes a source holds. FIFOs are only named in the manifest
    (a shared filesystem may refuse mkfifo: sshfs does); the other names of a hard-link group link to its
    first name."""
    durable, check = how
    data.mkdir(parents=True)
    for rel in snap.dirs:
        (data / rel).mkdir(parents=True, exist_ok=True)
    for rel, target in snap.links.items():
        os.symlink(target, data / rel)
    written = 0
    files: dict[str, dict[str, Any]] = {}
    with contextlib.nullcontext() if durable else direct_buffer() as buffer:  # node-local: no page cache
        for rel, rec in snap.files.items():
            if rel in snap.hardlinks:
                continue  # after its group's first name
            old = previous[1].files.get(rel) if previous else None
            same_file = old is not None and all(old.get(k) == rec[k] for k in ("size", "mtime", "ino"))
            if same_file and expected is not None:
                same_file = old.get("hash") == expected.get(rel)  # type: ignore[union-attr]
            if same_file and previous and check is not None:
                same_file = check.trusted(previous[0] / "data" / rel, rel, old["hash"])  # type: ignore[index]
            if same_file and previous and _link(previous[0] / "data" / rel, data / rel):
                files[rel] = {**rec, "hash": old["hash"]}  # type: ignore[index]
                if check is not None:
                    check.now[rel] = old["hash"]  # type: ignore[index]
                continue
            source = sources.get(rel)
            if source and expected and expected.get(rel) == source[0] and _link(source[1], data / rel):
                files[rel] = {**rec, "hash": source[0]}
                continue
            limit = rec["size"] if expected is not None else None  # appended to since: copy what it had
            digest = _copy_file(workspace, rel, rec, data / rel, durable, expected is not None, stop, buffer, limit)
            if expected is not None and digest != expected.get(rel):
                raise Torn(f"{rel} changed while it was being copied")
            files[rel] = {**rec, "hash": digest}
            written += rec["size"]
    for rel, first in snap.hardlinks.items():
        if not _link(data / first, data / rel):  # a filesystem without hard links: the bytes once more
            _copy_hashing(data / first, data / rel, durable)
            written += snap.files[rel]["size"]
        files[rel] = {**snap.files[rel], "hash": files[first]["hash"]}
    return files, written


def _copy_file(workspace: Path, rel: str, rec: dict[str, Any], dst: Path, durable: bool, live: bool,
               stop: threading.Event | None, buffer: mmap.mmap | None, limit: int | None) -> str:
    """One file of a copy; `live`: steps may be running in the workspace (a background copy, see module doc)."""
    try:
        return _copy_hashing(workspace / rel, dst, durable, stop, buffer, limit)
    except OSError as exc:
        if live and not _still_there(workspace / rel, rec):
            raise Torn(f"{rel} was moved, removed or replaced while it was being copied ({exc})") from exc
        raise  # the copy's own side (a full disk): not the steps' doing


def _still_there(path: Path, rec: dict[str, Any]) -> bool:
    """The checkpoint's file is still at its path: the same regular file (inode), with the same mode."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_ino == rec["ino"] and stat.S_IMODE(st.st_mode) == rec.get(
        "mode", stat.S_IMODE(st.st_mode))


def _link(src: Path, dst: Path) -> bool:
    try:
        os.link(src, dst)
        return True
    except OSError:
        return False


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def restore_copy(copy_dir: Path, snap: Snapshot, workspace: Path) -> int:
    """Make the workspace equal to a copy; return bytes copied. Raises Corrupt on any mismatch.

    Workspace files whose size and hash already match are kept; everything else comes from the copy and
    is verified while it is copied. A manifest that failed its own hash is refused before anything changes;
    hard-link groups are linked again and FIFOs made anew (copies hold neither).
    """
    if snap.problem:
        raise Corrupt(f"{copy_dir}: {snap.problem}")
    workspace.mkdir(parents=True, exist_ok=True)
    tree = scan(workspace)
    for rel in tree.dirs:  # a step may have left a directory read-only: whatever is in it can go or come back
        os.chmod(workspace / rel, 0o700)
    for rel in tree.links:
        (workspace / rel).unlink()
    _remove_extra(workspace, snap, tree)
    for rel in snap.dirs:
        (workspace / rel).mkdir(parents=True, exist_ok=True)
        os.chmod(workspace / rel, 0o700)  # writable while it is filled; its recorded mode comes last
    copied = 0
    for rel, rec in snap.files.items():
        if rel in snap.hardlinks:
            continue  # linked to its group's first name below
        target = workspace / rel
        have = tree.files.get(rel)
        if have is not None and have["size"] == rec["size"] and hash_file(target) == rec["hash"]:
            if (have["mode"], have["mtime"]) != (rec.get("mode", have["mode"]), rec["mtime"]):
                _as_recorded(target, rec)  # the bytes are right; a failed step changed its mode or time
            continue
        source = copy_dir / "data" / rel
        try:
            target.unlink(missing_ok=True)
            got = _copy_hashing(source, target, sync=False)
        except OSError as exc:
            raise Corrupt(f"{copy_dir}: {rel}: {exc.strerror or exc}") from None
        if got != rec["hash"]:
            raise Corrupt(f"{copy_dir}: {rel}: hash mismatch (expected {rec['hash']}, got {got})")
        _as_recorded(target, rec)  # a copy linked to a dataset cache object has the object's mode and time
        copied += rec["size"]
    for rel, first in snap.hardlinks.items():
        if tree.files.get(rel, {}).get("ino") != os.stat(workspace / first).st_ino:
            (workspace / rel).unlink(missing_ok=True)
            os.link(workspace / first, workspace / rel)
    for rel, target in snap.links.items():
        os.symlink(target, workspace / rel)
    for rel in snap.fifos:
        if rel not in tree.fifos:
            if (workspace / rel).is_dir() and not (workspace / rel).is_symlink():
                shutil.rmtree(workspace / rel)
            else:
                (workspace / rel).unlink(missing_ok=True)  # a file a later step put where the pipe was
            os.mkfifo(workspace / rel)
    for rel in sorted(snap.dirs, key=len, reverse=True):  # a read-only directory last, below it first
        os.chmod(workspace / rel, snap.dir_modes.get(rel, 0o755))
    return copied


def _as_recorded(target: Path, rec: dict[str, Any]) -> None:
    """Mode and mtime as the manifest recorded them (manifests from before they held modes: left alone)."""
    if "mode" in rec:
        os.chmod(target, rec["mode"])
        os.utime(target, ns=(rec["mtime"], rec["mtime"]))


def write_l1(path: Path, snap: Snapshot) -> None:
    write_json_atomic(path, sealed(snap))


def read_l1(path: Path) -> Snapshot | None:
    """The L1 manifest; None when there is none or it fails its own hash (then L2 and L3 are tried)."""
    snap = opened(read_json(path))
    return None if snap is None or snap.problem else snap
