"""A Job's final condition read from its status, without the models: the controller decides on it, `logs` and
`wait` explain with it."""

from __future__ import annotations

from typing import Any


def final_condition(status: dict[str, Any]) -> dict[str, Any] | None:
    """The Job's Complete or Failed condition that is True (None: it has not finished)."""
    return next((c for c in reversed(status.get("conditions") or [])
                 if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"), None)
