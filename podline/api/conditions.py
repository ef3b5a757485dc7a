"""A Job's final condition read from its status, without the models: the controller decides on it, `logs` and
`wait` explain with it.

As Kubernetes (1.31 on) does, a Job that meets its success or failure criteria first gets the interim condition
(`SuccessCriteriaMet`, `FailureTarget`) and stops its remaining pods; the final one (`Complete`, `Failed`, same
reason and message) follows once they are gone, so whoever waits for it knows nothing of the Job runs any more.
"""

from __future__ import annotations

from typing import Any

INTERIM = {"Complete": "SuccessCriteriaMet", "Failed": "FailureTarget"}  # final condition -> its interim one
FINAL = {interim: final for final, interim in INTERIM.items()}
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")


def final_condition(status: dict[str, Any]) -> dict[str, Any] | None:
    """The Job's Complete or Failed condition that is True (None: it has not finished)."""
    return _true_condition(status, INTERIM.keys())


def decided_condition(status: dict[str, Any]) -> dict[str, Any] | None:
    """The condition that ended the Job's run: its final one, else its interim one while the pods it stopped
    are terminating (None: it runs on)."""
    return final_condition(status) or _true_condition(status, INTERIM.values())


def _true_condition(status: dict[str, Any], kinds: Any) -> dict[str, Any] | None:
    return next((c for c in reversed(status.get("conditions") or [])
                 if c.get("type") in kinds and c.get("status") == "True"), None)
