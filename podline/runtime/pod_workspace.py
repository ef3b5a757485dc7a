"""The shared emptyDir of a pod in pipeline form, checkpointed between its init containers.

The same `Workspace` as a Pipeline shard's (see `plan.pod_workspace` for which pods qualify): restore the
newest valid checkpoint before the first container (L1 if the RAM copy survived on this node, else the
L2 copy), checkpoint after each init container that succeeds, rewind before a container is restarted.
At the end the RAM goes back to the node; the L2 copy stays only for a failed pod whose Job index will
get another pod (it resumes from it), and goes once the work succeeded.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podline.runtime.workspace import Workspace


class PodWorkspace:
    def __init__(self, plan: dict[str, Any], index: int | None, log: Callable[[str], None],
                 given_up: Callable[[], bool] = lambda: False) -> None:
        spec = plan["workspace"]
        key = spec["key"].replace("{index}", str(index if index is not None else 0))
        like_a_shard = {"pod": {"uid": key}, "dirs": spec["dirs"], "checkpoint": spec["checkpoint"],
                        "workspace": {"medium": spec["medium"], "sizeLimit": spec["sizeLimit"]},
                        "terminationGracePeriodSeconds": plan["terminationGracePeriodSeconds"]}
        shared = spec["dirs"].get("shared")
        # An index's RAM outlives its pods (the next one resumes from it), so no pod's run directory can own
        # it: its checkpoints' directory on the shared directory does, which goes when the index succeeds
        # (`finish`) or the Job is over (`controller.jobs.forget_checkpoints`). A runner killed on a Slurm node
        # then leaves nothing there for good: the next runner on that node sweeps it (`runtime.orphans`).
        self.owner = f"{shared.rstrip('/')}/checkpoints/{key}" if spec["resumable"] and shared else None
        if self.owner:
            like_a_shard["owner"] = self.owner
        self.volume: str = spec["volume"]
        # L2 before the next container starts: a restarted container is rewound to the last checkpoint and
        # nothing before it runs again, so that copy must exist (pipeline steps, rerun from whatever checkpoint
        # is found, can have theirs made in the background).
        self.workspace = Workspace(like_a_shard, 0, log, name=f"podline-{key}", directory=self.volume,
                                   background_l2=False, given_up=given_up)
        self.resumable: bool = spec["resumable"]
        self.restored_from: str | None = None
        self.log = log
        self.done: list[str] = []  # the containers the workspace holds the results of
        self.lost: list[str] = []  # ... that the last rewind could not bring back: they must run again

    @property
    def path(self) -> Path:
        return self.workspace.path

    @property
    def saved(self) -> dict[str, dict[str, Any]]:
        return self.workspace.saved

    def restore(self) -> list[str]:
        """Names of the containers the newest valid checkpoint covers (they are not run again)."""
        if self.owner:
            Path(self.owner).mkdir(parents=True, exist_ok=True)  # owned while it exists (see __init__)
        snap, self.restored_from = self.workspace.restore()
        self.done = list(snap.steps) if snap else []
        return self.done

    def checkpoint(self, done: list[str]) -> None:
        self.done = done
        self.workspace.checkpoint(done, False)

    def rewind(self) -> bool:
        """Before a container restarts: its failed attempt's leftovers go, the last checkpoint comes back.

        False when the newest valid checkpoint is older than the containers done so far (no L2, a damaged or
        failed copy, and the failed attempt changed their files): those are in `lost` and must run again
        before the container restarts, or it would run on a workspace they never made.
        """
        snap, _ = self.workspace.restore()
        covered = list(snap.steps) if snap else []
        self.lost = [name for name in self.done if name not in covered]
        self.done = covered
        if self.lost:
            self.log(f"no valid checkpoint holds the results of {', '.join(self.lost)}: they run again")
        return not self.lost

    def finish(self, succeeded: bool) -> None:
        """The RAM copy goes; the node-local copies stay only for a pod that failed and may resume."""
        if succeeded or not self.resumable:
            self.workspace.copier.stop()  # its copy would be removed with the level right below
        self.workspace.release_ram()
        if succeeded or not self.resumable:
            for level in self.workspace.levels.values():
                shutil.rmtree(level.parent, ignore_errors=True)  # checkpoints/<key>/
