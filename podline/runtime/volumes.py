"""Materialise a pod's volumes on this node and clean them up.

emptyDir lives in the run directory (Disk) or under the node's RAM-backed directory (`medium: Memory`:
`$PODLINE_SHM_DIR`, default /dev/shm); configMap, secret and downwardAPI volumes are written as files
(secrets 0600 by default); hostPath is used in place, after Kubernetes' check of its `type`.

The RAM-backed directory of a pod attempt (its Memory emptyDirs, and a container runtime's /dev/shm for it)
is `podline-<uid>`; for a task of a job array, whose one plan has the array's id as uid, `podline-<uid>-
<index>`: tasks on one node must neither see nor remove each other's. The runner removes it when the pod
ends; a runner that is killed (Slurm's time limit) cannot, so the directory names its owner, the run directory
(`runtime.orphans`), and the next runner on the node removes it once the pod was deleted.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from podline.runtime import orphans
from podline.runtime.expand import file_bytes
from podline.runtime.files import tree_size

# hostPath `type` -> (the test of a stat mode, what Kubernetes' message calls it); the *OrCreate types check
# what they find as Directory and File do
HOST_PATH_TYPES: dict[str, tuple[Callable[[int], bool], str]] = {
    "Directory": (stat.S_ISDIR, "a directory"), "DirectoryOrCreate": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"), "FileOrCreate": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket file"), "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device")}


class VolumeError(Exception):
    pass


def shm_root() -> Path:
    return Path(os.environ.get("PODLINE_SHM_DIR", "/dev/shm"))


def memory_key(pod_uid: str, index_vars: Mapping[str, str] | None = None) -> str:
    """The name of a pod attempt's RAM-backed directory: a job array's tasks share the plan's uid (the array's
    id), so their index is part of it."""
    return "-".join(["podline", pod_uid, *(index_vars or {}).values()])


def run_root(rundir: Path, array_task: bool) -> Path | None:
    """The backend's directory holding `pods/`, from a run directory `ROOT/pods/NS/NAME/UID` (an array
    task's: `ROOT/pods/NS/JOB/ARRAY/INDEX`); None for any other layout, which then claims nothing."""
    parents = Path(os.path.abspath(rundir)).parents
    depth = 4 if array_task else 3
    if len(parents) <= depth or parents[depth - 1].name != "pods":
        return None
    return parents[depth]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Volumes:
    """The host directory behind each volume name of one pod attempt."""

    def __init__(self, specs: list[dict[str, Any]], rundir: Path, pod_uid: str,
                 index_vars: Mapping[str, str] | None = None, log: Callable[[str], None] = _stderr) -> None:
        self.specs = {v["name"]: v for v in specs}
        self.index_vars = dict(index_vars or {})  # a job array task's index: its own pod's downward values
        self.rundir = rundir
        self.memory_root = shm_root() / memory_key(pod_uid, self.index_vars)
        self.paths: dict[str, Path] = {}
        self.log = log

    def prepare(self) -> None:
        """Every volume's directory; if one cannot be made, the RAM taken so far goes back at once (the
        runner fails the pod without releasing anything)."""
        self.claim_memory()
        try:
            for name, spec in self.specs.items():
                self.paths[name] = self._prepare_one(name, spec)
        except BaseException:
            self.release_memory()
            raise

    def claim_memory(self) -> None:
        """Name the run directory as the owner of the RAM-backed directory before anything is put there, and
        remove what runners killed on this node left for pods deleted since (see `runtime.orphans`)."""
        root = run_root(self.rundir, array_task=bool(self.index_vars))
        if root is None:
            return
        try:
            orphans.claim(self.memory_root, str(root), os.path.abspath(self.rundir))
        except OSError as exc:  # a pod with no RAM volume needs none; one with them fails on making them
            self.log(f"could not claim {self.memory_root}: {exc}")
            return
        orphans.collect([self.memory_root.parent], self.log)

    def _prepare_one(self, name: str, spec: dict[str, Any]) -> Path:
        kind = spec["type"]
        if kind == "emptyDir":
            base = self.memory_root if spec.get("medium") == "Memory" else self.rundir / "volumes"
            path = base / name
            path.mkdir(parents=True, exist_ok=True, mode=0o755)
            return path
        if kind == "hostPath":
            return host_path(Path(spec["path"]), spec.get("hostPathType", ""))
        path = self.rundir / "volumes" / name
        path.mkdir(parents=True, exist_ok=True, mode=0o755)
        for item in spec["files"]:
            target = path / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)  # a read-only mode (defaultMode 0444) would refuse the rewrite
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, item["mode"])
            with os.fdopen(fd, "wb") as handle:
                handle.write(file_bytes(item, self.index_vars))
            os.chmod(target, item["mode"])
        return path

    def over_limit(self) -> str | None:
        """Kubelet's eviction message for the first emptyDir above its sizeLimit, if any."""
        for name, spec in self.specs.items():
            limit = spec.get("sizeLimit")
            if spec["type"] == "emptyDir" and limit and name in self.paths:
                used = tree_size(self.paths[name])
                if used > limit:
                    written = spec.get("sizeLimitAsWritten") or limit
                    return f'Usage of EmptyDir volume "{name}" exceeds the limit "{written}". (used {used} bytes)'
        return None

    def has_limits(self) -> bool:
        return any(s["type"] == "emptyDir" and s.get("sizeLimit") for s in self.specs.values())

    def release_memory(self) -> None:
        """RAM is the scarcest resource on a node: memory-backed emptyDirs go when the pod ends."""
        shutil.rmtree(self.memory_root, ignore_errors=True)


def host_path(path: Path, wanted: str) -> Path:
    """A hostPath volume's directory after kubelet's check of its `type` (the *OrCreate types make what is
    missing); a path of another kind fails the pod's mount, as `hostPath type check failed` does there."""
    if wanted == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True)
    elif wanted == "FileOrCreate" and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    if wanted not in HOST_PATH_TYPES:
        return path
    test, what = HOST_PATH_TYPES[wanted]
    try:
        ok = test(path.stat().st_mode)
    except OSError:
        ok = False  # kubelet's message is the same for a missing path
    if not ok:
        raise VolumeError(f"hostPath type check failed: {path} is not {what}")
    return path
