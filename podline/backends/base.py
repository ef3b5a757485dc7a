"""The small interface every backend offers the controller: launch, observe, cancel, clean up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

RunState = Literal["unstarted", "running", "finished", "lost"]


@dataclass
class Observation:
    """What a backend knows about one attempt. `status` is the runner's Kubernetes-shaped pod status."""

    state: RunState
    status: dict[str, Any] | None = None
    node: str | None = None
    detail: str = ""  # for "lost": what is known about why (e.g. the runner's last words)


class Backend(Protocol):
    name: str

    def run_dir(self, namespace: str, name: str, uid: str) -> Path: ...

    def launch(self, rundir: Path, plan: dict[str, Any]) -> None: ...

    def observe(self, rundir: Path) -> Observation: ...

    def cancel(self, rundir: Path, hard: bool = False) -> None: ...

    def claim(self, rundir: Path) -> bool:
        """Mark an attempt that never started as done, so a late runner exits; False if it is running."""
        ...

    def reap(self) -> None:
        """Housekeeping once per controller pass (e.g. collect exited child processes)."""
        ...

    def cleanup(self, rundir: Path, pod_uid: str) -> None: ...

    def log_path(self, rundir: Path, container: str) -> Path: ...
