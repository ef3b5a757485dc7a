"""A Pipeline in Kubernetes' own terms: a `batch/v1` Indexed Job whose pod runs the steps as initContainers.

This is the Kubernetes-native form of a pod pipeline: one index per shard, steps in topological order
(the last one as the pod's container, since a pod needs one), all sharing an `emptyDir` workspace at
`/workspace` (`medium: Memory` for a Memory workspace). `render --target kubernetes` prints it, and the
Slurm backend sizes a pipeline's job array from it (the allocation must fit the largest step).
Checkpoints and DAG parallelism are podline's own; on Kubernetes the steps simply run in order.
"""

from __future__ import annotations

from typing import Any

from podline.api.pipeline import Pipeline, Step, topological_order
from podline.api.quantity import memory_bytes

WORKSPACE = "/workspace"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"


def _container(step: Step, shards: int) -> dict[str, Any]:
    own = step.dump()
    env = [{"name": "PODLINE_WORKSPACE", "value": WORKSPACE},
           {"name": "PODLINE_SHARDS", "value": str(shards)},
           {"name": "PODLINE_SHARD",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}}]
    container: dict[str, Any] = {"name": step.name, "image": step.image or "busybox"}
    for key in ("imagePullPolicy", "command", "args"):
        if own.get(key):
            container[key] = own[key]
    container["env"] = env + own.get("env", [])
    container["workingDir"] = step.working_dir or WORKSPACE
    if own.get("resources"):
        container["resources"] = own["resources"]
    container["volumeMounts"] = [{"name": "workspace", "mountPath": WORKSPACE}]
    return container


def pipeline_job(manifest: dict[str, Any]) -> dict[str, Any]:
    pipeline = Pipeline.model_validate(manifest)
    spec = pipeline.spec
    meta = pipeline.metadata
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
    labels = {**meta.labels, "podline.io/pipeline": meta.name or ""}
    metadata: dict[str, Any] = {"name": meta.name, "namespace": meta.namespace, "labels": labels}
    if meta.annotations:
        metadata["annotations"] = dict(meta.annotations)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
            "spec": {"completions": spec.shards, "parallelism": spec.shards, "completionMode": "Indexed",
                     "backoffLimit": spec.backoff_limit,
                     "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec}}}


def pipeline_array_job(manifest: dict[str, Any]) -> dict[str, Any]:
    """The Job a Slurm job array is sized from: a Memory workspace lives in the allocation's RAM (tmpfs
    pages count against the job's memory), so its sizeLimit is added to every step's memory request."""
    job = pipeline_job(manifest)
    workspace = Pipeline.model_validate(manifest).spec.workspace
    if workspace.medium != "Memory" or workspace.size_limit is None:
        return job
    extra = memory_bytes(workspace.size_limit)
    pod = job["spec"]["template"]["spec"]
    for container in pod.get("initContainers", []) + pod["containers"]:
        resources = container.setdefault("resources", {})
        wanted = {**resources.get("limits", {}), **resources.get("requests", {})}.get("memory", 0)
        resources.setdefault("requests", {})["memory"] = memory_bytes(wanted) + extra
        if "memory" in resources.get("limits", {}):
            resources["limits"]["memory"] = memory_bytes(resources["limits"]["memory"]) + extra
    return job
