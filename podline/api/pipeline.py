"""`podline.io/v1alpha1 Pipeline`: a DAG of steps sharing one node-local workspace, with checkpoints and shards.

Steps are containers (same fields as a Pod's containers, minus volumes: the workspace is their shared
space) plus `dependsOn` and an optional `checkpoint: major`. Cross-step rules (unknown or cyclic
dependencies) live in `api.checks` so they report the exact field path.
"""

from __future__ import annotations

import heapq
import os
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator

from podline.api.base import Model, Resource, check_dns_label, check_dns_subdomain
from podline.api.core import Container, SizeLimit, check_relative_path
from podline.api.dataset import file_url_path

MAX_SHARDS = 10_000
MAX_STEPS = 1_000

StepName = Annotated[str, AfterValidator(lambda v: check_dns_label(v, "step name"))]
RelativePath = Annotated[str, AfterValidator(check_relative_path)]


def _absolute(value: str) -> str:
    if not value.startswith("/") or ".." in value.split("/"):
        raise ValueError(f"{value!r} must be an absolute path without '..'")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):  # as a Dataset's source: no NUL, newline, escape
        raise ValueError(f"{value!r}: control characters are not allowed in a path")
    return value


AbsolutePath = Annotated[str, AfterValidator(_absolute)]


def _not_root(value: str) -> str:
    if os.path.normpath(value) in ("/", "//"):  # `/.`, `//.`, `/./` too (they published into /: helper-80)
        raise ValueError("must name a directory below '/' (outputs are published into it)")
    return value


Destination = Annotated[AbsolutePath, AfterValidator(_not_root)]


class Step(Container):
    depends_on: list[StepName] = Field(default_factory=list)
    checkpoint: Literal["major"] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_dns_label(value, "step name")


class Workspace(Model):
    medium: Literal["Memory", "Disk"] = "Memory"
    size_limit: SizeLimit | None = None


class CheckpointPolicy(Model):
    node_local_every: int = Field(default=1, ge=0, le=MAX_STEPS)  # L2 after every N steps (0: never)
    shared_every: int = Field(default=0, ge=0, le=MAX_STEPS)  # L3 after every N steps (0: only `major`)


class Input(Model):
    """Data copied into the workspace before the first step: a path on the shared filesystem (`source`) or
    this shard's slice of a Dataset (`dataset`, through the node-local cache). Exactly one of the two."""

    path: RelativePath
    source: str | None = None
    dataset: Annotated[str, AfterValidator(lambda v: check_dns_subdomain(v, "dataset name"))] | None = None

    @field_validator("source")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _absolute(file_url_path(value))


class Output(Model):
    """A workspace path copied to `destination` (per shard: `destination/<shard>`) when the shard succeeds."""

    path: RelativePath
    destination: Destination


class PipelineSpec(Model):
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    workspace: Workspace = Field(default_factory=Workspace)
    shards: int = Field(default=1, ge=1, le=MAX_SHARDS)
    checkpoint: CheckpointPolicy = Field(default_factory=CheckpointPolicy)
    restart_policy: Literal["OnFailure", "Never"] = "OnFailure"
    backoff_limit: int = Field(default=6, ge=0, le=10_000)
    active_deadline_seconds: int | None = Field(default=None, ge=1, le=10**9)
    inputs: list[Input] = Field(default_factory=list)
    outputs: list[Output] = Field(default_factory=list)
    IGNORED: ClassVar[frozenset[str]] = frozenset({"ttlSecondsAfterFinished"})


class Pipeline(Resource):
    api_version: Literal["podline.io/v1alpha1"]
    kind: Literal["Pipeline"]
    spec: PipelineSpec


def topological_order(steps: list[Step]) -> list[int]:
    """Step indexes in an order where every step comes after its dependencies; among steps that are ready
    together, the one written first goes first (Kahn's algorithm over a heap of positions).

    Raises ValueError naming the steps of a cycle (unknown names are the caller's check).
    """
    position = {s.name: i for i, s in enumerate(steps)}
    waiting_on = [len({position[d] for d in s.depends_on if d in position}) for s in steps]
    dependants: list[list[int]] = [[] for _ in steps]
    for i, step in enumerate(steps):
        for dep in {position[d] for d in step.depends_on if d in position}:
            dependants[dep].append(i)
    ready = [i for i, count in enumerate(waiting_on) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in dependants[i]:
            waiting_on[j] -= 1
            if waiting_on[j] == 0:
                heapq.heappush(ready, j)
    if len(order) < len(steps):
        loop = _cycle(steps, set(order), position)
        raise ValueError(f"dependsOn forms a cycle through step {loop[0]!r}: {' -> '.join(loop)}")
    return order


def _cycle(steps: list[Step], placed: set[int], position: dict[str, int]) -> list[str]:
    """Walk unplaced dependencies from an unplaced step until one repeats: that loop is a cycle."""
    current = next(i for i in range(len(steps)) if i not in placed)
    path: list[int] = []
    while current not in path:
        path.append(current)
        current = next(position[d] for d in steps[current].depends_on if d in position and position[d] not in placed)
    loop = path[path.index(current):] + [current]
    return [steps[i].name for i in reversed(loop)]
