"""The one doubling back-off that retries share: a Job's next pod, a pipeline shard's next attempt, a step's
retry inside a runner (each with its own base and cap)."""

from __future__ import annotations

MAX_DOUBLINGS = 32  # 2.0 ** 1024 does not fit a float: past this the cap applies anyway


def doubling_delay(failures: int, base: float, cap: float) -> float:
    """Seconds to wait after the n-th failure: `base`, doubling with each failure after the first, at most `cap`."""
    return min(cap, base * 2 ** min(max(failures - 1, 0), MAX_DOUBLINGS))
