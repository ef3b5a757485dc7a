"""A Pipeline in Kubernetes' own terms: a `batch/v1` Indexed Job whose pod runs the steps as initContainers.

This is the Kubernetes-native form of a pod pipeline: one index per shard, steps in topological order
(the last one as the pod's container, since a pod needs one), all sharing an `emptyDir` workspace at
`/workspace` (`medium: Memory` for a Memory workspace). `render --target kubernetes` prints it, and the
Slurm backend sizes a pipeline's job array from it (the allocation must fit the largest step).
Checkpoints and DAG parallelism are podline's own; on Kubernetes the steps simply run in order.

Where podline's meaning and Kubernetes' defaults part, the Job says what podline means:
- a RAM workspace's sizeLimit is part of every step's memory (tmpfs pages are charged to the pod's memory
  cgroup on Kubernetes, and to the allocation on Slurm), see `_add_workspace_memory`;
- a GPU request without a limit gets the limit Kubernetes requires (extended resources are never
  overcommitted: request == limit);
- backoffLimit counts per shard (`_backoff`);
- activeDeadlineSeconds is final in podline (a shard past it is not retried): the Job has it too, since the
  pod's own would start afresh in every retried pod (the pod keeps it: Slurm's --time is sized from it);
- a checkpoint policy other than the default becomes the pod form's annotations, so podline runs the Job
  with the same L2/L3 intervals (`_checkpoint_annotations`);
- a Pipeline named by `generateName` keeps it (the API server names the Job) and has no pipeline label.
"""

from __future__ import annotations

from typing import Any

from podline.api.pipeline import CheckpointPolicy, Pipeline, PipelineSpec, Step, topological_order
from podline.api.quantity import EXTENDED_RESOURCES, memory_bytes
from podline.plan.pod_workspace import NODE_LOCAL_EVERY, SHARED_EVERY

WORKSPACE = "/workspace"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
PIPELINE_LABEL = "podline.io/pipeline"
_BINARY_SUFFIXES = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


def _container(step: Step, shards: int) -> dict[str, Any]:
    own = step.dump()
    env = [{"name": "PODLINE_WORKSPACE", "value": WORKSPACE},
           {"name": "PODLINE_SHARDS", "value": str(shards)},
           {"name": "PODLINE_SHARD",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}}]
    container: dict[str, Any] = {"name": step.name, "image": step.image or "busybox"}
    for key in ("imagePullPolicy", "command", "args", "envFrom", "terminationMessagePath", "terminationMessagePolicy"):
        if own.get(key):
            container[key] = own[key]
    container["env"] = env + own.get("env", [])
    container["workingDir"] = step.working_dir or WORKSPACE
    if own.get("resources"):
        resources = container["resources"] = own["resources"]
        for key in EXTENDED_RESOURCES:  # a missing limit is the request (api.checks refuses an unequal one)
            if key in resources.get("requests", {}) and key not in resources.get("limits", {}):
                resources.setdefault("limits", {})[key] = resources["requests"][key]
    container["volumeMounts"] = [{"name": "workspace", "mountPath": WORKSPACE}]
    return container


def memory_quantity(amount: int) -> str:
    """Bytes as a Kubernetes quantity, in the largest binary unit that holds them exactly (`12Gi`)."""
    for suffix, size in _BINARY_SUFFIXES:
        if amount and amount % size == 0:
            return f"{amount // size}{suffix}"
    return str(amount)


def _add_workspace_memory(spec: PipelineSpec, pod: dict[str, Any]) -> None:
    """A Memory workspace is a tmpfs: its files are charged to memory (on Kubernetes to the cgroup of the step
    that writes them, then the pod's, so a step with limits.memory 1Gi filling a 4Gi workspace would be
    OOM-killed; on Slurm to the allocation). So its sizeLimit is added to every step's memory: to the limit
    where one is set, and to the request (the limit when only that is set, as Kubernetes defaults it) so the
    scheduler keeps the RAM free; a step that asks for no memory requests the workspace's. Without a
    sizeLimit the tmpfs is bounded only by the memory itself, and nothing is added."""
    workspace = spec.workspace
    if workspace.medium != "Memory" or workspace.size_limit is None:
        return
    extra = memory_bytes(workspace.size_limit)
    for container in pod.get("initContainers", []) + pod["containers"]:
        resources = container.setdefault("resources", {})
        limits = resources.get("limits", {})
        wanted = {**limits, **resources.get("requests", {})}.get("memory", 0)
        resources.setdefault("requests", {})["memory"] = memory_quantity(memory_bytes(wanted) + extra)
        if "memory" in limits:
            limits["memory"] = memory_quantity(memory_bytes(limits["memory"]) + extra)


def _backoff(spec: PipelineSpec) -> dict[str, int]:
    """podline's backoffLimit counts each shard's failures on its own (one shard's failures never fail the
    others). With restartPolicy Never that is Kubernetes' `backoffLimitPerIndex` (batch/v1, beta and on by
    default since 1.29, GA in 1.33); the Job-wide backoffLimit is left out, so the API server defaults it to
    2147483647 and it never cuts in. backoffLimitPerIndex needs restartPolicy Never, so with OnFailure
    (container restarts in place, counted Job-wide) the Job-wide limit is every shard's budget together:
    Kubernetes then fails the Job only once some shard has failed more often than podline allows it."""
    if spec.restart_policy == "Never":
        return {"backoffLimitPerIndex": spec.backoff_limit}
    return {"backoffLimit": spec.backoff_limit * spec.shards}


def _metadata(pipeline: Pipeline) -> tuple[dict[str, Any], dict[str, str]]:
    """The Job's metadata and its pods' labels. A Pipeline without a name keeps its generateName; its Job has
    no pipeline label (the name is the API server's to choose, and a generateName ends in '-' most often,
    which no label value may)."""
    meta = pipeline.metadata
    labels = dict(meta.labels)
    if meta.name is not None:
        labels[PIPELINE_LABEL] = meta.name
    metadata: dict[str, Any] = ({"name": meta.name} if meta.name is not None
                                else {"generateName": meta.generate_name})
    metadata["namespace"] = meta.namespace
    if labels:
        metadata["labels"] = labels
    if meta.annotations:
        metadata["annotations"] = dict(meta.annotations)
    return metadata, labels


def _checkpoint_annotations(spec: PipelineSpec) -> dict[str, str]:
    """A checkpoint policy other than the default, as the pod form's annotations (`plan.pod_workspace`): podline
    runs the rendered Job with the same L2/L3 intervals (Kubernetes ignores them). A step's `checkpoint: major`
    has no pod form: sharedEvery is what carries over."""
    policy, default = spec.checkpoint, CheckpointPolicy()
    out = {}
    if policy.node_local_every != default.node_local_every:
        out[NODE_LOCAL_EVERY] = str(policy.node_local_every)
    if policy.shared_every != default.shared_every:
        out[SHARED_EVERY] = str(policy.shared_every)
    return out


def pipeline_job(manifest: dict[str, Any]) -> dict[str, Any]:
    pipeline = Pipeline.model_validate(manifest)
    spec = pipeline.spec
    containers = [_container(spec.steps[i], spec.shards) for i in topological_order(spec.steps)]
    empty_dir: dict[str, Any] = {"medium": "Memory"} if spec.workspace.medium == "Memory" else {}
    if spec.workspace.size_limit is not None:
        empty_dir["sizeLimit"] = spec.workspace.size_limit
    pod_spec: dict[str, Any] = {"restartPolicy": spec.restart_policy, "initContainers": containers[:-1],
                                "containers": containers[-1:], "volumes": [{"name": "workspace",
                                                                            "emptyDir": empty_dir}]}
    if not pod_spec["initContainers"]:
        del pod_spec["initContainers"]
    if spec.active_deadline_seconds:
        pod_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    _add_workspace_memory(spec, pod_spec)
    metadata, labels = _metadata(pipeline)
    template_meta: dict[str, Any] = {"labels": dict(labels)} if labels else {}
    annotations = _checkpoint_annotations(spec)
    if annotations:
        template_meta["annotations"] = annotations
    template: dict[str, Any] = {"metadata": template_meta} if template_meta else {}
    job_spec: dict[str, Any] = {"completions": spec.shards, "parallelism": spec.shards, "completionMode": "Indexed",
                                **_backoff(spec)}
    if spec.active_deadline_seconds:  # final, as podline's: a retried pod would get a fresh pod-level deadline
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
            "spec": {**job_spec, "template": {**template, "spec": pod_spec}}}


def pipeline_array_job(manifest: dict[str, Any]) -> dict[str, Any]:
    """The Job a Slurm job array is sized from: the Kubernetes form itself, whose steps already carry a Memory
    workspace in their memory (tmpfs pages count against the job's memory on Slurm too). Unless no step asks
    for memory at all: Slurm's --mem is a limit as well as a request, and the workspace's size alone (8Mi, say)
    would leave nothing for the runner and the steps; without --mem the job gets the partition's default, as
    a pod with a RAM emptyDir and no memory does."""
    job = pipeline_job(manifest)
    steps = Pipeline.model_validate(manifest).spec.steps
    if not any("memory" in step.resources.effective_requests() for step in steps):
        pod = job["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            container.get("resources", {}).get("requests", {}).pop("memory", None)
    return job
