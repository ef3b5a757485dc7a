"""How a Job counts its pods' failures, as the Kubernetes job controller does: what `podFailurePolicy` makes of
a failed pod, the back-off before the next pod, and `backoffLimitPerIndex` (KEP-3850).

With `backoffLimitPerIndex` an Indexed Job counts each index's failures on its own: an index with more than
that many (or failed by a FailIndex rule) is failed for good (no more pods; `status.failedIndexes`), and the
Job goes on with the others. It fails once every index has completed or failed, if any failed (FailedIndexes),
or at once when more than `maxFailedIndexes` have (MaxFailedIndexesExceeded). Each index waits its own
back-off. The counts live in the Job's record (`internal.indexFailures`: index -> [failures, time of the last
one, those an Ignore rule matched]) and are written by jobs._tally with the pods' counted marks, in one
transaction; a new pod carries its index's counts in the annotations batch.kubernetes.io/job-index-failure-count
and job-index-ignored-failure-count, as in Kubernetes.

Without per-index limits the Job's next pod waits a back-off doubling with the failures since the last success
(`backoffFailures`; ignored ones too), as Kubernetes' back-off record counts them.
"""

from __future__ import annotations

import os
from typing import Any

from podline.plan.ranges import compress, expand
from podline.runtime.backoff import doubling_delay
from podline.store import Obj

BACKOFF_BASE = float(os.environ.get("PODLINE_JOB_BACKOFF_SECONDS", "1"))
BACKOFF_CAP = 360.0
FAILURE_COUNT_KEY = "batch.kubernetes.io/job-index-failure-count"
IGNORED_COUNT_KEY = "batch.kubernetes.io/job-index-ignored-failure-count"


def retry_delay(failures: int) -> float:
    """Seconds between the last failure and the next pod: BACKOFF_BASE doubling per failure, at most BACKOFF_CAP."""
    return doubling_delay(failures, BACKOFF_BASE, BACKOFF_CAP)


def failure_action(pod: Obj, rules: list[dict[str, Any]]) -> tuple[str, str | None]:
    """What a failed pod means under `podFailurePolicy` (first matching rule wins; none matching: Count): Ignore
    (not counted: a node lost or a pre-emption, say), FailJob (with the reason the Job fails now), FailIndex
    (its index fails now), Count."""
    matched = next(((i, r) for i, r in enumerate(rules) if _rule_matches(r, pod.status)), None)
    if matched is None:
        return "Count", None
    action = matched[1]["action"]
    if action == "FailJob":
        return action, f"Pod {pod.namespace}/{pod.name} failed matching the FailJob rule at index {matched[0]}"
    return action, None


def _rule_matches(rule: dict[str, Any], status: dict[str, Any]) -> bool:
    codes = rule.get("onExitCodes")
    if codes is not None:  # any (or the named) container that failed with a code In / NotIn the values
        for c in status.get("containerStatuses", []) + status.get("initContainerStatuses", []):
            code = c.get("state", {}).get("terminated", {}).get("exitCode")
            if code in (None, 0) or codes.get("containerName") not in (None, c["name"]):
                continue
            if (code in codes["values"]) == (codes["operator"] == "In"):
                return True
        return False
    wanted = {(c["type"], c.get("status", "True")) for c in rule.get("onPodConditions", [])}
    return any((c.get("type"), c.get("status")) in wanted for c in status.get("conditions", []))


def backoff_failures(job: Obj) -> int:
    """Failures since the Job's last success: what its next pod's back-off doubles with (a record from before
    this count was kept has only its total)."""
    return job.internal.get("backoffFailures", job.internal.get("failed", 0))


def per_index(job: Obj) -> bool:
    return job.manifest["spec"].get("backoffLimitPerIndex") is not None


def count_index_failure(job: Obj, index: int, now: float, action: str) -> bool:
    """One more failure of `index` (on the Job's record; the caller saves it); True when that fails the index
    (over the limit, or a FailIndex rule): the caller adds those with add_failed_indexes, once per tally. One an
    Ignore rule matched counts apart: not against the limit, but in the index's back-off, as in Kubernetes."""
    records = job.internal.setdefault("indexFailures", {})
    count, _, ignored = records.get(str(index), [0, now, 0])
    if action == "Ignore":
        ignored += 1
    else:
        count += 1
    records[str(index)] = [count, now, ignored]
    return action == "FailIndex" or count > job.manifest["spec"]["backoffLimitPerIndex"]


def add_failed_indexes(job: Obj, indexes: set[int]) -> None:
    """Record `indexes` as failed for good (the range string is rebuilt once, not once per failure: thousands
    of indexes failing in one pass made that quadratic)."""
    if indexes:
        job.internal["failedIndexes"] = compress(sorted(failed_indexes(job) | indexes))


def failed_indexes(job: Obj) -> set[int]:
    return set(expand(job.internal.get("failedIndexes", "")))


def index_failures(job: Obj, index: int) -> tuple[int, int]:
    """An index's failures so far: those counted against its limit, and those an Ignore rule matched."""
    count, _, ignored = job.internal.get("indexFailures", {}).get(str(index), [0, 0.0, 0])
    return count, ignored


def index_annotations(job: Obj, index: int) -> dict[str, str]:
    """What a new pod of `index` carries of its index's failures, as Kubernetes' pods do."""
    if not per_index(job):
        return {}
    failures, ignored = index_failures(job, index)
    return {FAILURE_COUNT_KEY: str(failures), **({IGNORED_COUNT_KEY: str(ignored)} if ignored else {})}


def past_back_off(job: Obj, indexes: list[int], now: float) -> tuple[list[int], float | None]:
    """Those of `indexes` whose own back-off is over, and when the next of the others' ends (None: no other)."""
    ready, later = [], []
    records = job.internal.get("indexFailures", {})
    for index in indexes:
        failures, last, ignored = records.get(str(index), [0, now, 0])
        ready_at = last + retry_delay(failures + ignored) if failures + ignored else now
        if now >= ready_at:
            ready.append(index)
        else:
            later.append(ready_at)
    return ready, min(later, default=None)


def index_verdict(job: Obj) -> tuple[str, str] | None:
    """Why a Job with per-index limits fails (reason, message), if it does now."""
    if not per_index(job):
        return None
    spec = job.manifest["spec"]
    failed = failed_indexes(job)
    limit = spec.get("maxFailedIndexes")
    if limit is not None and len(failed) > limit:
        return "MaxFailedIndexesExceeded", "Job has exceeded the specified maximal number of failed indexes"
    completed = set(expand(job.internal.get("completedIndexes", "")))
    if failed and len(completed | failed) >= spec["completions"]:
        return "FailedIndexes", "Job has failed indexes"
    return None
