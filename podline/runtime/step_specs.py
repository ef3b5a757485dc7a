"""Which spec each step of a running pipeline shard runs, as `apply` of a changed spec rewrites its plan file.

Kept apart from `runtime.pipeline` (which schedules the steps) because it is a rule of its own. The
controller rewrites a live shard's `plan.json` after an `apply` (`controller.pipeline_updates.push_generation`);
the runner re-reads it while steps run and before each step starts. A step that is not running takes the
newest spec for its next attempt: one that has not started yet, and one waiting for its retry alike (a
retry is a new attempt, as a new shard attempt is, and that one reads the new plan anyway). A running step
keeps the spec it started with until it ends; a finished step keeps its result (it runs again only if a
rewind discards it, and then with the newest spec). Each step records the generation of the spec it
actually runs, never the plan's newest one (`generation_of`).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any


class StepSpecs:
    def __init__(self, plan: dict[str, Any], plan_path: Path) -> None:
        self.path = plan_path
        self.stamp = stamp(plan_path)
        generation = plan.get("generation")
        # name -> spec: what the step runs now, or will run next (never replaced while it runs)
        self.specs: dict[str, dict[str, Any]] = {s["name"]: s for s in plan["steps"]}
        self.generations: dict[str, Any] = dict.fromkeys(self.specs, generation)
        # name -> (spec, generation) of the newest plan: a step running when it came takes it at its next start
        self.newest: dict[str, tuple[dict[str, Any], Any]] = {n: (s, generation) for n, s in self.specs.items()}

    def newer_plan(self) -> dict[str, Any] | None:
        """The plan file's content if it was rewritten since it was last read (and can be read), else None."""
        now = stamp(self.path)
        if now == self.stamp:
            return None
        self.stamp = now
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def take(self, plan: dict[str, Any], running: Collection[str]) -> None:
        """A newer plan's specs: at once for every step not in `running`, at their next start for the others."""
        generation = plan.get("generation")
        for spec in plan["steps"]:
            if spec["name"] in self.specs:
                self.newest[spec["name"]] = (spec, generation)
        for name in self.specs:
            if name not in running:
                self.starting(name)

    def starting(self, name: str) -> dict[str, Any]:
        """The spec a step's attempt that starts now runs: the newest one."""
        self.specs[name], self.generations[name] = self.newest[name]
        return self.specs[name]

    def generation_of(self, name: str) -> Any:
        """The generation of the spec the step runs (or will run next)."""
        return self.generations[name]


def retries_for(plan: dict[str, Any], shard: int) -> int:
    """The plan's retries for this shard (by shard index, or one number for all)."""
    retries = plan.get("retries", 0)
    return int(retries.get(str(shard), 0) if isinstance(retries, dict) else retries)


def stamp(path: Path) -> tuple[int, int, int] | None:
    """A plan file's identity: it is replaced (renamed over) when the controller rewrites it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino
