"""What a pipeline shard does before its first step: every step's image, then the resume or the stage-in.

Images come first, all of them, so that a bad image fails the shard before anything is staged or run; while a
registry cannot be reached the steps wait in ImagePullBackOff (runtime.engine). Then the workspace is brought
back from the newest trustworthy checkpoint (runtime.workspace), or, with none, the inputs are staged in.
Mixed into the runner (runtime.pipeline), whose status these write.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from podline.runtime import step_records
from podline.runtime.engine import Engine, ImagePullFailed

if TYPE_CHECKING:
    from podline.runtime.workspace import Workspace


class ShardStart:
    plan: dict[str, Any]
    shards: int
    engine: Engine
    workspace: Workspace
    specs: dict[str, dict[str, Any]]
    steps: dict[str, dict[str, Any]]
    done: list[str]
    status: dict[str, Any]
    stopping: threading.Event
    phase: str
    stop_reason: tuple[str, str] | None

    if TYPE_CHECKING:  # the runner's, used here
        def write_status(self, finished: bool = False) -> None: ...

    def _prepare_images(self) -> bool:
        """Every step's image before anything runs or is staged: a bad image fails the shard at once."""
        try:
            self.engine.make_shm()
            self.engine.prepare(self.specs.values(), self.stopping, self._image_back_off)
            step_records.images_pulled(self.steps.values())
        except ImagePullFailed as exc:
            self.engine.remove_shm()
            self.phase = "Failed"
            self.stop_reason = self.stop_reason or (exc.reason, f"step {exc.container}: {exc}")
            step_records.failed(self.steps[exc.container], exc.reason, str(exc), ended=False)
            self.write_status(finished=True)
            return False
        finally:
            if self.engine.images:
                self.status["timings"]["image"] = round(self.engine.prepare_seconds, 3)
        return True

    def _image_back_off(self, step: str, message: str) -> None:
        step_records.image_back_off(self.steps[step], message)
        self.write_status()

    def _resume_or_stage_in(self) -> None:
        began = time.monotonic()
        snap, level = self.workspace.restore()
        if snap is not None:
            self.status.update(restoredFrom=level, restoredSeq=snap.seq)
            for name in snap.steps:
                if name in self.steps:
                    self.steps[name].update(phase="Succeeded", restoredFrom=level)
                    self.done.append(name)
            self.status["timings"]["restore"] = round(time.monotonic() - began, 3)
            return
        staged = self.workspace.stage_in(self.plan["inputs"], self.shards)
        self.status["staging"] = staged.to_json()
        self.status["stageInBytes"] = staged.bytesCopied + staged.bytesReused
        self.status["timings"]["stageIn"] = round(time.monotonic() - began, 3)
