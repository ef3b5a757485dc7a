"""Materialise a pod's volumes on this node and clean them up.

emptyDir lives in the run directory (Disk) or under the node's RAM-backed directory (`medium: Memory`:
`$PODLINE_SHM_DIR`, default /dev/shm); configMap, secret and downwardAPI volumes are written as files
(secrets 0600 by default); hostPath is used in place.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from podline.runtime.expand import file_bytes
from podline.runtime.files import tree_size


class VolumeError(Exception):
    pass


def shm_root() -> Path:
    return Path(os.environ.get("PODLINE_SHM_DIR", "/dev/shm"))


class Volumes:
    """The host directory behind each volume name of one pod attempt."""

    def __init__(self, specs: list[dict[str, Any]], rundir: Path, pod_uid: str,
                 index_vars: Mapping[str, str] | None = None) -> None:
        self.specs = {v["name"]: v for v in specs}
        self.index_vars = dict(index_vars or {})  # a job array task's index: its own pod's downward values
        self.rundir = rundir
        self.memory_root = shm_root() / f"podline-{pod_uid}"
        self.paths: dict[str, Path] = {}

    def prepare(self) -> None:
        for name, spec in self.specs.items():
            self.paths[name] = self._prepare_one(name, spec)

    def _prepare_one(self, name: str, spec: dict[str, Any]) -> Path:
        kind = spec["type"]
        if kind == "emptyDir":
            base = self.memory_root if spec.get("medium") == "Memory" else self.rundir / "volumes"
            path = base / name
            path.mkdir(parents=True, exist_ok=True, mode=0o755)
            return path
        if kind == "hostPath":
            path = Path(spec["path"])
            wanted = spec.get("hostPathType", "")
            if wanted == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True)
            elif wanted == "FileOrCreate" and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            elif wanted == "Directory" and not path.is_dir():
                raise VolumeError(f"hostPath {path} is not a directory")
            elif wanted == "File" and not path.is_file():
                raise VolumeError(f"hostPath {path} is not a file")
            return path
        path = self.rundir / "volumes" / name
        path.mkdir(parents=True, exist_ok=True, mode=0o755)
        for item in spec["files"]:
            target = path / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
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
                    return f'Usage of EmptyDir volume "{name}" exceeds the limit "{limit}" bytes (used {used}).'
        return None

    def has_limits(self) -> bool:
        return any(s["type"] == "emptyDir" and s.get("sizeLimit") for s in self.specs.values())

    def release_memory(self) -> None:
        """RAM is the scarcest resource on a node: memory-backed emptyDirs go when the pod ends."""
        shutil.rmtree(self.memory_root, ignore_errors=True)
