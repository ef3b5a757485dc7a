"""Turn a stored Pipeline into the JSON plan the pipeline runner executes (one plan for all shards).

Steps are planned like a Pod's containers (env resolved, `$(VAR)` left for the runner) and listed in
topological order with their dependencies. `retries` is the part of `backoffLimit` earlier attempts of
each shard have not used (by shard index, or one number for all). `generation` lets the runner record
which spec each step ran with.
"""

from __future__ import annotations

from typing import Any

from podline.api.core import KeySelector, Secret
from podline.api.dataset import Dataset
from podline.api.pipeline import Input, Pipeline, PipelineSpec, topological_order
from podline.api.quantity import cpu_millis, memory_bytes
from podline.plan.kubernetes import WORKSPACE
from podline.plan.pod import PLAN_VERSION, Lookup, PlanWaiting, plan_container


def _plan_input(item: Input, namespace: str, lookup: Lookup) -> dict[str, Any]:
    """A source path as it is; a Dataset by its current spec (a missing one: the pipeline waits for it)."""
    if item.dataset is None:
        return {"path": item.path, "source": item.source}
    found = lookup("Dataset", namespace, item.dataset)
    if not isinstance(found, Dataset):
        raise PlanWaiting("DatasetNotFound", f'dataset "{item.dataset}" not found')
    spec = found.spec
    dataset: dict[str, Any] = {"name": item.dataset, "source": spec.source, "include": spec.include,
                               "exclude": spec.exclude, "shardBy": spec.shard_by}
    if spec.endpoint or spec.region:
        dataset["s3"] = {"endpoint": spec.endpoint, "region": spec.region}
    if spec.access_key_secret and spec.secret_key_secret:  # into the plan (0600), as secret env values are
        dataset["credentials"] = {"key": secret_key(lookup, namespace, spec.access_key_secret),
                                  "secret": secret_key(lookup, namespace, spec.secret_key_secret)}
    return {"path": item.path, "dataset": dataset}


def secret_key(lookup: Lookup, namespace: str, ref: KeySelector) -> str:
    """A Dataset's key secret; a missing Secret or key: the pipeline waits for it, as a pod does."""
    found = lookup("Secret", namespace, ref.name)
    data = found.decoded() if isinstance(found, Secret) else {}
    if ref.key not in data:
        what = f"key {ref.key} in secret" if isinstance(found, Secret) else "secret"
        raise PlanWaiting("CreateContainerConfigError", f'couldn\'t find {what} "{ref.name}"')
    return data[ref.key].decode("utf-8", errors="replace").strip()


def peak_cpu_millis(spec: PipelineSpec) -> int:
    """About the most CPU a shard's steps use at once: per depth in the DAG (one more than a step's deepest
    dependency's), the steps at that depth together, each at least a core as the runner counts them. A chain is
    its largest step; a fork of two 1-core branches is two cores."""
    depth: dict[str, int] = {}
    layers: dict[int, int] = {}
    for i in topological_order(spec.steps):
        step = spec.steps[i]
        depth[step.name] = 1 + max((depth[d] for d in step.depends_on), default=0)
        cores = max(1, -(-cpu_millis(step.resources.effective_requests().get("cpu", 0)) // 1000))
        layers[depth[step.name]] = layers.get(depth[step.name], 0) + cores * 1000
    return max(layers.values())


def plan_pipeline(manifest: dict[str, Any], uid: str, lookup: Lookup, *, generation: int, dirs: dict[str, str],
                  shard_dir: str, retries: int | dict[str, int], runtime: str = "host",
                  images: dict[str, Any] | None = None, shard: int | None = None) -> dict[str, Any]:
    pipeline = Pipeline.model_validate(manifest)
    spec = pipeline.spec
    steps = []
    for i in topological_order(spec.steps):
        step = spec.steps[i]
        planned = plan_container(step, pipeline, uid, lookup)  # type: ignore[arg-type]
        request = step.resources.effective_requests()
        planned.update(dependsOn=list(step.depends_on), checkpoint=step.checkpoint,
                       cpuMillis=cpu_millis(request.get("cpu", 0)))
        steps.append(planned)
    limit = spec.workspace.size_limit
    return {
        "apiVersion": PLAN_VERSION,
        "kind": "Pipeline",
        "pod": {"name": pipeline.metadata.name, "namespace": pipeline.metadata.namespace, "uid": uid},
        "generation": generation,
        "runtime": runtime,
        "images": images or {},
        "shards": spec.shards,
        "shard": shard,
        "workspace": {"medium": spec.workspace.medium, "mountPath": WORKSPACE,
                      "sizeLimit": memory_bytes(limit) if limit is not None else None},
        "checkpoint": {"nodeLocalEvery": spec.checkpoint.node_local_every,
                       "sharedEvery": spec.checkpoint.shared_every},
        "dirs": dirs,
        "shardDir": shard_dir,
        "restartPolicy": spec.restart_policy,
        "retries": retries,
        "activeDeadlineSeconds": spec.active_deadline_seconds,
        "terminationGracePeriodSeconds": 30,
        "inputs": [_plan_input(i, pipeline.metadata.namespace, lookup) for i in spec.inputs],
        "outputs": [{"path": o.path, "destination": o.destination} for o in spec.outputs],
        "steps": steps,
    }
