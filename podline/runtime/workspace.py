"""A pipeline shard's workspace and its checkpoint levels: where they live, how to save and how to resume.

Locations (per pipeline uid and shard, so every attempt of a shard on a node finds the same ones):
  workspace  Memory: `$PODLINE_SHM_DIR` (default /dev/shm) / podline-<uid>-<shard>/ws
             Disk:   <scratch>/workspaces/podline-<uid>-<shard>/ws
  L1         the workspace itself + `l1.json` beside it
  L2         <scratch>/checkpoints/<uid>/<shard>/<seq>/        node-local disk
  L3         <shared>/checkpoints/<uid>/<shard>/<seq>/         shared storage (survives the node)
Scratch is the context's node-local directory (on Slurm `$TMPDIR` or /tmp when not configured).

L2 copies are written in the background while the next steps run (`runtime.copier`); L3 copies, rarer and
meant to survive the node, are written before the next step starts.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xxhash

from podline.api.quantity import binary_size
from podline.runtime import checkpoint as ck
from podline.runtime import orphans
from podline.runtime.checkpoint_manifest import copy_problem
from podline.runtime.copier import BackgroundCopier
from podline.runtime.files import tree_size
from podline.runtime.publish import Pending, inside, prepare
from podline.runtime.staging import DatasetNotFound, Staged, stage_dataset
from podline.runtime.staging_space import block_size, fits_room
from podline.runtime.volumes import shm_root

SETTLE_SLICE = 0.25  # seconds: how soon a wait for a background copy notices a stop request
TICK_NS = 50_000_000  # coarser than any kernel's file timestamp clock (jiffies: 1-10 ms)


def scratch_root(plan: dict[str, Any]) -> Path:
    configured = plan["dirs"].get("scratch")
    if configured:
        return Path(configured)
    return Path(os.environ.get("TMPDIR") or "/tmp") / "podline-scratch"



class GivenUp(Exception):
    """podline gave this attempt up while it ran (see files.stop_requested)."""


class StageOutStopped(GivenUp):
    """The runner was told to stop (SIGTERM: `delete`, a time limit) while it staged out: nothing published."""


GIVEN_UP_POLL = 0.5  # seconds: how often a stage-out looks whether podline gave it up (a file on shared storage)


class OutputNotFound(Exception):
    """An output path the steps did not make: no new attempt would make it (finished steps never rerun)."""


LEVEL_ORDER = ("L1", "L2", "L3")  # nearest first: of two equal states, the nearer is restored


class Workspace:
    def __init__(self, plan: dict[str, Any], shard: int, log: Callable[[str], None], *,
                 name: str = "", directory: str = "ws", on_saved: Callable[[], None] | None = None,
                 background_l2: bool = True, given_up: Callable[[], bool] = lambda: False) -> None:
        """`name` (default podline-<uid>-<shard>) and `directory` place a pod's emptyDir where its other
        volumes live (podline-<uid>/<volume>); `on_saved` is called (from the copier's thread) when a
        background L2 copy is complete; `background_l2` False makes every L2 copy before returning;
        `given_up` says when podline has given this attempt up: then it writes nothing shared (L3, outputs)."""
        uid = plan["pod"]["uid"]
        key = name or f"podline-{uid}-{shard}"
        scratch = scratch_root(plan)
        medium = plan["workspace"]["medium"]
        self.root = (shm_root() if medium == "Memory" else scratch / "workspaces") / key
        self.path = self.root / directory
        self.l1_path = self.root / "l1.json"
        self.shard = shard
        self.dataset_cache = scratch / "datasets"  # node-local, shared by every pipeline on the node
        self.levels = {"L2": scratch / "checkpoints" / uid / str(shard)}
        if plan["dirs"].get("shared"):  # a pod in pipeline form without a shared directory has no L3
            self.levels["L3"] = Path(plan["dirs"]["shared"]) / "checkpoints" / uid / str(shard)
        self.plan = plan
        self.policy = plan["checkpoint"]
        self.size_limit: int | None = plan["workspace"].get("sizeLimit")
        self.log = log
        self.seq = 0
        self.counted = {"L2": 0, "L3": 0}  # steps done when each level was last due (see checkpoint)
        self.saved: dict[str, dict[str, Any]] = {}  # level -> {seq, bytes, seconds}; replaced, never mutated
        self.saved_lock = threading.Lock()
        self.on_saved = on_saved
        self.background_l2 = background_l2
        self.given_up = given_up
        self.copier = BackgroundCopier(self.path, self.levels["L2"], log, self._l2_saved)
        self.hashes: dict[str, tuple[tuple[int, int, int], str, int]] = {}  # rel -> (identity, hash, hashed at)
        # rel -> (identity when staged, hash, the dataset cache object with its bytes): L2 links, not copies
        self.staged: dict[str, tuple[tuple[int, int, int], str, Path]] = {}
        self.waited = 0.0  # seconds spent waiting for background copies
        self.grace = float(plan.get("terminationGracePeriodSeconds", 30))
        self.stop_deadline: float | None = None  # monotonic; the grace period counts from the stop request
        self.rejected: list[str] = []  # copies that failed verification when restoring, and why

    # --- resume -------------------------------------------------------------------------------------
    def restore(self) -> tuple[ck.Snapshot | None, str | None]:
        """Bring back the state with the most steps done (then the newest, then the nearest level): the
        workspace itself (L1), an L2 copy or an L3 copy. An attempt back on a node it ran on before finds that
        node's older workspace beside a newer L3 made elsewhere in between; the newer one wins.

        A copy that fails verification is deleted (it would otherwise shadow older valid ones), recorded in
        `rejected` (the shard's status says so), and the next candidate is tried. Nothing valid: an empty
        workspace.
        """
        self.settle_copies()
        self._claim_and_collect()
        l1 = ck.read_l1(self.l1_path) if self.path.is_dir() else None
        found: list[tuple[str, Path | None, ck.Snapshot]] = [("L1", None, l1)] if l1 is not None else []
        found += [(level, *hit) for level, root in self.levels.items() if (hit := ck.newest(root)) is not None]
        found.sort(key=lambda item: (-len(item[2].steps), -item[2].seq, LEVEL_ORDER.index(item[0])))
        l1_valid = l1 is not None and ck.l1_matches(self.path, l1)
        for level, copy_dir, snap in found:
            if copy_dir is None:
                if l1_valid:
                    self.seq = snap.seq  # l1.json already describes the workspace as it is
                    self.counted = dict.fromkeys(self.counted, len(snap.steps))
                    return snap, "L1"
                continue
            try:
                if l1_valid and (problem := copy_problem(copy_dir, snap)):  # restoring overwrites the workspace:
                    raise ck.Corrupt(problem)  # a valid one is only given up for a copy known to be sound
                copied = ck.restore_copy(copy_dir, snap, self.path)
            except ck.Corrupt as exc:
                self.log(f"checkpoint {level} seq {snap.seq} is not valid ({exc}); falling back")
                self.rejected.append(f"{level} seq {snap.seq}: {exc}")
                shutil.rmtree(copy_dir, ignore_errors=True)
                l1_valid = l1_valid and ck.l1_matches(self.path, l1)
                continue
            self.log(f"restored {level} seq {snap.seq} ({copied} bytes copied), steps done: {snap.steps}")
            return self._resumed(snap, level)
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        self.l1_path.unlink(missing_ok=True)
        self.seq = 0
        return None, None

    def _claim_and_collect(self) -> None:
        """Name this shard's owner on its workspace and L2 copies, and remove what deleted pipelines left on
        this node (see runtime.orphans); without an owner in the plan (a pod in pipeline form) only the root."""
        owner, shared = self.plan.get("owner"), self.plan["dirs"].get("shared")
        if not owner or not shared:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            return
        orphans.claim(self.root, shared, owner)  # first: an attempt's own leftovers are its to resume from
        orphans.claim(self.levels["L2"].parent, shared, owner)
        orphans.collect([self.root.parent, self.levels["L2"].parent.parent], self.log)

    def _resumed(self, snap: ck.Snapshot, level: str) -> tuple[ck.Snapshot, str]:
        """A restored copy gave the workspace new inodes: record them as its L1 manifest."""
        self.seq = snap.seq
        self.counted = dict.fromkeys(self.counted, len(snap.steps))
        ck.write_l1(self.l1_path, ck.take_l1(self.path, snap.seq, snap.steps))
        return snap, level

    # --- save ---------------------------------------------------------------------------------------
    def copy_due(self, done: int, major: bool) -> bool:
        """Would a checkpoint with `done` steps done write an L2 or L3 copy (the policy asks for one)? Then the
        runner holds new steps until it can take it (see runtime.pipeline); an L1 alone does not hold them."""
        return any(self._levels_due(done, major))

    def _levels_due(self, count: int, major: bool) -> tuple[bool, bool]:
        every_l2, every_l3 = self.policy.get("nodeLocalEvery", 0), self.policy.get("sharedEvery", 0)
        l2_due = bool(every_l2 and (count - self.counted["L2"] >= every_l2 or self.copier.lost))
        l3_due = bool((major or (every_l3 and count - self.counted["L3"] >= every_l3)) and "L3" in self.levels)
        return l2_due, l3_due

    def checkpoint(self, done: list[str], major: bool) -> None:
        """After a step: L1 always; L2 every `nodeLocalEvery` steps (in the background); L3 every `sharedEvery`
        or at a major step (before returning). "Every N steps" counts steps done since the level was last due:
        steps running side by side settle together, so the count may pass a multiple of N without landing on
        it. A background L2 copy that was lost (torn by the next step, or failed) makes L2 due at the next
        checkpoint, whatever the count: with "every 5 steps" the shard would otherwise go five more steps
        without one."""
        self.seq += 1
        snap = ck.take_l1(self.path, self.seq, list(done))
        ck.write_l1(self.l1_path, snap)
        count = len(done)
        l2_due, l3_due = self._levels_due(count, major)
        self.counted = {"L2": count if l2_due else self.counted["L2"], "L3": count if l3_due else self.counted["L3"]}
        if not (l2_due or l3_due):
            return
        expected = self._hash_files(snap)
        sources = self._staged_unchanged(snap)
        if l2_due and self.background_l2 and not self.copier.torn:
            self.copier.submit(snap, expected, sources)
        elif l2_due:  # asked for, or steps here change files in place (a background copy would be torn again)
            self.settle_copies()
            self._save("L2", snap, expected, sources)
        if l3_due and self.given_up():
            self.log(f"no L3 copy of seq {snap.seq}: podline gave this attempt up (another may be running)")
        elif l3_due:
            self._save("L3", snap, expected)

    def _staged_unchanged(self, snap: ck.Snapshot) -> ck.Sources:
        """Dataset files as staged (same size, mtime, inode): their L2 copy is a hard link to the node cache's
        object (same node-local filesystem; a cache collection later only drops the cache's name for it)."""
        out: ck.Sources = {}
        for rel, (identity, digest, obj) in self.staged.items():
            rec = snap.files.get(rel)
            if rec is not None and (rec["size"], rec["mtime"], rec["ino"]) == identity:
                out[rel] = (digest, obj)
        return out

    def _save(self, level: str, snap: ck.Snapshot, expected: dict[str, str], sources: ck.Sources | None = None) -> None:
        """A copy made before the next step starts. A failure costs this copy (logged), not the run: the
        previous copy at that level stays the newest."""
        began = time.monotonic()
        try:
            written = ck.save_copy(self.path, self.levels[level], snap, level == "L3", expected, None, sources)
        except (OSError, ck.Torn) as exc:
            self.log(f"{level} copy of seq {snap.seq} failed: {exc}; the previous {level} copy stays the newest")
            return
        if level == "L2":
            self.copier.lost = False  # made up for
        self._record(level, snap, written, time.monotonic() - began, background=False)

    def _hash_files(self, snap: ck.Snapshot) -> dict[str, str]:
        """Each file's hash now. A cached hash is reused only for a file whose identity (size, mtime, inode)
        is unchanged and whose mtime is older than the hashing by more than a clock tick (a write during the
        same tick could keep the mtime: "racily clean", as git calls it)."""
        hashes: dict[str, tuple[tuple[int, int, int], str, int]] = {}
        for rel, rec in snap.files.items():
            identity = (rec["size"], rec["mtime"], rec["ino"])
            cached = self.hashes.get(rel)
            if cached is not None and cached[0] == identity and identity[1] < cached[2] - TICK_NS:
                hashes[rel] = cached
            else:
                hashed_at = time.time_ns()
                hashes[rel] = (identity, ck.hash_file(self.path / rel), hashed_at)
        self.hashes = hashes
        return {rel: entry[1] for rel, entry in hashes.items()}

    def _l2_saved(self, snap: ck.Snapshot, written: int, seconds: float) -> None:
        self._record("L2", snap, written, seconds, background=True)
        if self.on_saved is not None:
            self.on_saved()

    def _record(self, level: str, snap: ck.Snapshot, written: int, seconds: float, background: bool) -> None:
        with self.saved_lock:  # the copier's thread (L2) and the runner's (L3) both record
            self.saved = {**self.saved, level: {"seq": snap.seq, "bytesWritten": written,
                                                "seconds": round(seconds, 3), "background": background}}

    def settle_copies(self, timeout: float | None = None) -> bool:
        """Wait for the background L2 copies (a restore or a failed shard needs the newest one on disk);
        past `timeout`, or the end of the grace period once the runner is told to stop (`stop_requested`),
        they are abandoned. True when nothing was abandoned."""
        if self.copier.idle():
            return True
        began = time.monotonic()
        limit = None if timeout is None else began + timeout
        done = False
        while not done:
            now = time.monotonic()
            if self.stop_deadline is not None:
                limit = min(limit or self.stop_deadline, self.stop_deadline)
            if limit is not None and now >= limit:
                break
            # Slices only while told nothing: a stop request must be noticed (the copier cannot see it).
            done = self.copier.drain(SETTLE_SLICE if limit is None else min(SETTLE_SLICE, limit - now))
        if not done:
            self.log("background L2 copy abandoned: the previous copy stays the newest")
            self.copier.stop()
        self.waited += time.monotonic() - began
        return done

    def stop_requested(self) -> None:
        """The runner was told to stop: every later wait for copies ends with the grace period that starts now
        (the waits for the steps to end come out of the same period, as Slurm's KillWait counts it)."""
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + self.grace

    def usage_over_limit(self) -> str | None:
        if not self.size_limit:
            return None
        used = tree_size(self.path)
        if used > self.size_limit:
            return f"workspace uses {binary_size(used)}, above its sizeLimit of {binary_size(self.size_limit)}"
        return None

    # --- data in and out ------------------------------------------------------------------------------
    def stage_in(self, inputs: list[dict[str, Any]], shards: int) -> Staged:
        """Each input into the workspace: a `source` copied whole, a `dataset` as this shard's slice through
        the node-local cache (`runtime.staging`)."""
        staged = Staged()
        block = block_size(self.path)  # the room as the sizeLimit counts it: allocated blocks, after each input
        for number, item in enumerate(inputs):
            room = None if not self.size_limit else self.size_limit - tree_size(self.path)
            target = self.path / item["path"]
            if item.get("dataset"):
                objects: dict[str, tuple[str, Path]] = {}
                listing = self._listing_path(number, item["dataset"])
                got = stage_dataset(item["dataset"], target, self.shard, shards, self.dataset_cache, objects, room,
                                    listing, block)
                staged.add(got)
                self._remember_staged(objects)
                continue
            source = Path(item["source"])
            if not source.exists():
                raise DatasetNotFound(f"input {item['path']}: its source {source} does not exist")
            if room is not None:
                fits_room(source, room, block)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
            files = [target] if target.is_file() else [f for f in target.rglob("*") if f.is_file()]
            staged.filesCopied += len(files)
            staged.bytesCopied += sum(f.stat().st_size for f in files)
        return staged

    def _listing_path(self, number: int, dataset: dict[str, Any]) -> Path | None:
        """Where this pipeline's shards keep the one listing of its input `number` (`runtime.listing`), beside
        their L3 copies; named by the dataset's spec too, so a Dataset changed by `apply` is listed anew."""
        if "L3" not in self.levels:
            return None
        spec = json.dumps({k: v for k, v in dataset.items() if k != "credentials"}, sort_keys=True).encode()
        return self.levels["L3"].parent / f"listing-{number}-{xxhash.xxh3_64_hexdigest(spec)}.json"

    def _remember_staged(self, objects: dict[str, tuple[str, Path]]) -> None:
        """What staging hashed already (as it copied) need not be hashed again at the first checkpoint."""
        now = time.time_ns()
        for path, (digest, obj) in objects.items():
            st = os.stat(path)
            rel = os.path.relpath(path, self.path)
            identity = (st.st_size, st.st_mtime_ns, st.st_ino)
            self.staged[rel] = (identity, digest, obj)
            self.hashes[rel] = (identity, digest, now)

    def stage_out(self, outputs: list[dict[str, Any]], shard: int, shards: int) -> int:
        """Copy each output to its destination (per shard a subdirectory when there are several shards), as
        `publish` does it: never following a link the steps left, never deleting what is there.

        A shard's outputs appear together or not at all: every output is first copied aside, then all are
        renamed into place; a failure before the renames (an output that cannot be copied, a destination not
        writable) removes every copy aside and publishes nothing. The renames themselves are not atomic
        together: one that fails midway (the destination's filesystem failing between two renames) leaves
        the outputs renamed before it published (the copies aside still left are removed).

        A stop request (SIGTERM: `delete`, a time limit; `stop_requested`) ends the copy at the next file
        (`StageOutStopped`), and an attempt podline gave up publishes nothing more (`GivenUp`, looked at every
        GIVEN_UP_POLL seconds of copying and again before the renames): another attempt owns the destination
        now. Either way the copies aside are removed."""
        missing = [item["path"] for item in outputs if not os.path.lexists(inside(self.path, item["path"]))]
        if missing:  # before anything is published: a shard's outputs appear together or not at all
            raise OutputNotFound(f"output path {missing[0]!r} is not in the workspace after the last step")
        next_look = [time.monotonic() + GIVEN_UP_POLL]

        def poll() -> None:  # before each file copied; a stop request is a flag, cheap to look at every time
            if self.stop_deadline is not None or time.monotonic() >= next_look[0]:
                self._check_not_given_up()
                next_look[0] = time.monotonic() + GIVEN_UP_POLL

        pending: list[Pending] = []
        try:
            for item in outputs:
                self._check_not_given_up()
                source = inside(self.path, item["path"])
                dest = Path(item["destination"]) / (str(shard) if shards > 1 else "")
                if not source.is_dir() or source.is_symlink():
                    dest = dest / source.name
                pending.append(prepare(source, dest, poll))
            self._check_not_given_up()
            return sum(copies.commit() for copies in pending)
        finally:
            for copies in pending:
                copies.discard()

    def _check_not_given_up(self) -> None:
        if self.stop_deadline is not None:
            raise StageOutStopped("the runner was told to stop during stage-out: outputs not staged out")
        if self.given_up():
            raise GivenUp("podline gave this attempt up (its node was declared lost?): outputs not staged out")

    def release(self) -> None:
        """A finished shard's RAM and its node-local copy (L2) go back to the node: on Slurm nobody else could
        reach that node's scratch later. L3, on the shared directory, stays until the pipeline is deleted."""
        self.copier.stop()
        self.release_ram()
        shutil.rmtree(self.levels["L2"], ignore_errors=True)

    def release_ram(self) -> None:
        """Only the workspace itself goes (its copies stay for a later attempt to resume from, so the
        background ones are finished first: they read from it)."""
        self.settle_copies()
        shutil.rmtree(self.root, ignore_errors=True)

