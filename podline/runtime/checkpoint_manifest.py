"""A checkpoint's manifest (`Snapshot`) and how it is sealed against damage.

Every manifest written (L1's `l1.json`, each L2/L3 copy's `manifest.json`) carries `manifestHash`, the
xxh3-128 of its canonical JSON body (sorted keys, no spaces, the hash field left out). File bytes are hashed
per file; the manifest itself also says where symlinks point, which names are FIFOs, directories and their
modes, hard-link groups and the steps done, and one flipped bit there would otherwise restore a wrong
workspace without any file failing its hash. A manifest whose hash does not match is reported as a
`problem`: `restore_copy` raises `Corrupt` for it (the caller falls back to the next level) and nothing is
hard-linked from such a copy.

Manifests written before the hash existed have none and are accepted unverified, as they always were, but
only when they hold nothing but the fields such a manifest had: a flipped bit cannot remove the hash field
cleanly, it can only garble its name (an unknown field, refused) or its value (a mismatch, refused).

Hard links: regular files in the workspace that share an inode (`ln f h`) are a group; `hardlinks` maps every
name of a group but the first (sorted) to that first name. A copy holds the group's bytes once and a restore
links the other names to the first, so a step writing through one name is seen under the others.

`ReadBack` remembers which files of a level's newest copy were read back and matched their hash (used by
`checkpoint.save_copy` before it hard-links them into the next durable copy).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from podline.runtime.copying import hash_file

HASH_FIELD = "manifestHash"
LEGACY_FIELDS = frozenset({"seq", "steps", "files", "dirs", "links", "dirModes", "fifos"})


@dataclass
class Snapshot:
    """A checkpoint's manifest: sequence number, steps done, and every file and directory it holds."""

    seq: int
    steps: list[str]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # rel -> {size, mtime, ino, mode[, hash]}
    dirs: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)
    dir_modes: dict[str, int] = field(default_factory=dict)  # rel -> permission bits (older manifests: none)
    fifos: list[str] = field(default_factory=list)  # named pipes a step made (mkfifo): no data, only the name
    hardlinks: dict[str, str] = field(default_factory=dict)  # rel -> first name of its hard-link group
    problem: str | None = field(default=None, compare=False)  # read back damaged: why (see the module doc)

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "steps": self.steps, "files": self.files, "dirs": self.dirs, "links": self.links,
                "dirModes": self.dir_modes, "fifos": self.fifos, "hardlinks": self.hardlinks}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Snapshot:
        return cls(doc["seq"], list(doc["steps"]), doc["files"], doc.get("dirs", []), doc.get("links", {}),
                   doc.get("dirModes", {}), doc.get("fifos", []), doc.get("hardlinks", {}))


def manifest_hash(body: dict[str, Any]) -> str:
    """The hash of a manifest's canonical JSON, its own hash field left out."""
    canonical = json.dumps({k: v for k, v in body.items() if k != HASH_FIELD}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=True)
    return xxhash.xxh3_128_hexdigest(canonical.encode())


def sealed(snap: Snapshot) -> dict[str, Any]:
    """The manifest document to write: the snapshot with its hash."""
    doc = snap.to_json()
    doc[HASH_FIELD] = manifest_hash(doc)
    return doc


def problem(doc: dict[str, Any]) -> str | None:
    """Why a manifest read back cannot be trusted, or None (see the module doc for manifests without a hash)."""
    want = doc.get(HASH_FIELD)
    if want is None:
        unknown = sorted(set(doc) - LEGACY_FIELDS)
        return f"manifest has no {HASH_FIELD} but unknown fields {unknown}" if unknown else None
    got = manifest_hash(doc)
    return None if got == want else f"manifest hash mismatch (expected {want}, got {got})"


def opened(doc: Any) -> Snapshot | None:
    """The snapshot a manifest document holds, its `problem` set when it is damaged; None when it is not a
    manifest at all (unreadable JSON, or a damaged one without the fields a snapshot needs)."""
    if not isinstance(doc, dict) or not doc:
        return None
    trouble = problem(doc)
    try:
        snap = Snapshot.from_json(doc)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    snap.problem = trouble
    return snap


def link_groups(inodes: dict[tuple[int, int], list[str]]) -> dict[str, str]:
    """Names sharing an inode (several in the tree) -> the group's first name."""
    out: dict[str, str] = {}
    for names in inodes.values():
        if len(names) > 1:
            first, *others = sorted(names)
            out.update(dict.fromkeys(others, first))
    return out


class ReadBack:
    """Files of a level's newest copy read back and found to hold their manifest hash. On a durable level a
    file is hard-linked into the next copy only once its bytes were read back so (else bit rot in one copy
    would be carried into every later one); each inode is read back once, the first time it would be linked:
    which ones were is kept in memory, per level, for the runner's life. The node-local L2, written after
    every step, links without reading back (a restore verifies every byte anyway)."""

    def __init__(self, before: dict[str, str]) -> None:
        self.before = before  # rel -> hash, for the previous copy
        self.now: dict[str, str] = {}  # the same for the copy being written

    def trusted(self, path: Path, rel: str, digest: str) -> bool:
        if self.before.get(rel) == digest:
            return True
        try:
            return hash_file(path) == digest
        except OSError:
            return False

    def remember(self, level_root: Path, copy_dir: Path) -> None:
        """`copy_dir` is now the level's newest copy: what of it was read back (its linked files)."""
        with _READ_BACK_LOCK:
            _READ_BACK[str(level_root)] = (os.stat(copy_dir).st_ino, self.now)


_READ_BACK: dict[str, tuple[int, dict[str, str]]] = {}  # level root -> (inode of its newest copy, rel -> hash)
_READ_BACK_LOCK = threading.Lock()


def read_back(level_root: Path, previous: Path | None) -> ReadBack:
    """What of `previous`, the level's newest copy, was read back already (nothing if another copy is there)."""
    with _READ_BACK_LOCK:
        ino, rels = _READ_BACK.get(str(level_root), (-1, {}))
    try:
        same = previous is not None and os.stat(previous).st_ino == ino
    except OSError:
        same = False
    return ReadBack(rels if same else {})


def copy_problem(copy_dir: Path, snap: Snapshot) -> str | None:
    """Why a copy would fail to restore (a manifest or a file whose bytes do not match), found by reading it
    whole, without touching the workspace; None if it is sound. Used before a copy may overwrite a workspace
    that is itself a valid state (runtime.workspace.restore)."""
    if snap.problem:
        return f"{copy_dir}: {snap.problem}"
    for rel, rec in snap.files.items():
        if rel in snap.hardlinks:
            continue  # its group's first name holds the bytes
        try:
            got = hash_file(copy_dir / "data" / rel)
        except OSError as exc:
            return f"{copy_dir}: {rel}: {exc.strerror or exc}"
        if got != rec["hash"]:
            return f"{copy_dir}: {rel}: hash mismatch (expected {rec['hash']}, got {got})"
    return None
