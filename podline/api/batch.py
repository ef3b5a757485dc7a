"""`batch/v1 Job`: completions, parallelism, Indexed completion mode, back-off and deadlines.

A Job's name becomes the `job-name` label of its pods, and a label value has at most 63 characters: like the
Kubernetes API server, `apply` refuses a longer name (or a generateName leaving no room for the suffix) rather
than storing a Job whose pods could never be made (api.checks.check_name_length, with MAX_NAME).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from podline.api.base import Model, ObjectMeta, Resource
from podline.api.core import PodSpec

MAX_COMPLETIONS = 100_000
MAX_NAME = 63  # the `job-name` label value of its pods
MAX_INT32 = 2**31 - 1


class PodTemplateSpec(Model):
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodSpec


class PodFailurePolicyOnExitCodes(Model):
    container_name: str | None = None
    operator: Literal["In", "NotIn"]
    values: list[int] = Field(min_length=1, max_length=255)


class PodFailurePolicyOnPodCondition(Model):
    type: str = Field(min_length=1, max_length=316)
    status: Literal["True", "False", "Unknown"] = "True"


class PodFailurePolicyRule(Model):
    action: Literal["FailJob", "FailIndex", "Ignore", "Count"]  # FailIndex needs backoffLimitPerIndex
    on_exit_codes: PodFailurePolicyOnExitCodes | None = None
    on_pod_conditions: list[PodFailurePolicyOnPodCondition] = Field(default_factory=list, max_length=20)


class PodFailurePolicy(Model):
    rules: list[PodFailurePolicyRule] = Field(max_length=20)


class SuccessPolicyRule(Model):
    succeeded_indexes: str | None = Field(default=None, max_length=65536)  # "0,2-3": in order, not overlapping
    succeeded_count: int | None = Field(default=None, ge=0, le=MAX_COMPLETIONS)


class SuccessPolicy(Model):
    rules: list[SuccessPolicyRule] = Field(min_length=1, max_length=20)


def index_intervals(text: str) -> list[tuple[int, int]]:
    """Kubernetes' index list ("1,3-5,7"): intervals in increasing order, not overlapping (ValueError else)."""
    out: list[tuple[int, int]] = []
    for part in text.split(","):
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"{part!r} is not an index or a range such as 2-5")
        low, high = int(first), int(last or first)
        if high < low or (out and low <= out[-1][1]):
            raise ValueError(f"{part!r}: intervals must be in increasing order and not overlap")
        out.append((low, high))
    return out


class JobSpec(Model):
    template: PodTemplateSpec
    completions: int | None = Field(default=None, ge=0, le=MAX_COMPLETIONS)
    parallelism: int | None = Field(default=None, ge=0, le=MAX_COMPLETIONS)
    completion_mode: Literal["NonIndexed", "Indexed"] = "NonIndexed"
    backoff_limit: int | None = Field(default=None, ge=0, le=MAX_INT32)  # see _defaults
    backoff_limit_per_index: int | None = Field(default=None, ge=0, le=MAX_INT32)
    max_failed_indexes: int | None = Field(default=None, ge=0, le=MAX_COMPLETIONS)
    active_deadline_seconds: int | None = Field(default=None, ge=1, le=10**9)
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0, le=10**9)
    suspend: bool = False
    pod_failure_policy: PodFailurePolicy | None = None
    pod_replacement_policy: Literal["TerminatingOrFailed", "Failed"] | None = None  # see controller.job_counts
    success_policy: SuccessPolicy | None = None
    IGNORED: ClassVar[frozenset[str]] = frozenset({"selector", "manualSelector"})

    @model_validator(mode="after")
    def _defaults(self) -> JobSpec:
        if self.completions is None and self.parallelism is None and self.completion_mode == "NonIndexed":
            self.completions = 1  # both unset: one pod, as the API server defaults it
        if self.parallelism is None:
            self.parallelism = 1
        if self.backoff_limit is None:  # as the API server: no limit of the Job's own when each index has one
            self.backoff_limit = 6 if self.backoff_limit_per_index is None else MAX_INT32
        return self


class Job(Resource):
    api_version: Literal["batch/v1"]
    kind: Literal["Job"]
    spec: JobSpec
