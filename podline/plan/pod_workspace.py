"""The Kubernetes-native form of a pipeline: init containers in order over one shared emptyDir.

A Pod with init containers, one main container and an emptyDir that every one of them mounts (and no other
emptyDir an init container writes to) is run by the pipeline engine: that emptyDir becomes a checkpointed
workspace (L1 manifest and an L2 copy on node-local disk after each init container that succeeds; see
`runtime.workspace`). A retry within the pod (restartPolicy OnFailure) first rewinds the workspace to the
newest checkpoint, and the next pod of the same Indexed Job index — after a node, runner or container failure
— resumes from it, skipping the init containers the checkpoint covers. Its identity (`key`) is therefore the
Job's uid and the index, not the pod's uid; a pod outside an Indexed Job keeps its checkpoints only for its
own retries.
Annotations set the intervals: `podline.io/checkpoint-node-local-every` (L2, default 1) and
`podline.io/checkpoint-shared-every` (L3 on the context's shared directory, default 0 = never), so a pod
retried on another node can resume there too.
"""

from __future__ import annotations

from typing import Any

from podline.api.core import Pod
from podline.api.names import INDEX_KEY

JOB_UID_LABEL = "controller-uid"


def shared_volume(pod: Pod) -> str | None:
    """The emptyDir every container mounts (whole, not a subPath), when the pod has the pipeline form."""
    spec = pod.spec
    if not spec.init_containers or len(spec.containers) != 1 or spec.restart_policy == "Always":
        return None
    if any(c.is_sidecar for c in spec.init_containers):  # a running service's state is not a step's result
        return None
    containers = [*spec.init_containers, *spec.containers]
    shared = next((v.name for v in spec.volumes if v.empty_dir is not None and all(
        any(m.name == v.name and not m.sub_path for m in c.volume_mounts) for c in containers)), None)
    if shared is None or _writes_elsewhere(pod, shared):
        return None
    return shared


def _writes_elsewhere(pod: Pod, shared: str) -> bool:
    """Does an init container write to another emptyDir? Its results there are in no checkpoint, so a pod that
    resumed and skipped it would miss them (on Kubernetes the next pod runs every init container again)."""
    empty_dirs = {v.name for v in pod.spec.volumes if v.empty_dir is not None} - {shared}
    return any(m.name in empty_dirs and not m.read_only for c in pod.spec.init_containers for m in c.volume_mounts)


def workspace_key(pod: Pod, uid: str, index_env: str | None) -> str:
    """Who may resume from the checkpoints: an Indexed Job's index (`{index}` filled in by an array task)."""
    meta = pod.metadata
    job_uid = meta.labels.get(JOB_UID_LABEL)
    index = meta.annotations.get(INDEX_KEY, "")
    if job_uid and index.isdigit() and index.isascii():  # both end up in a path: labels are safe, digits are
        return f"{job_uid}-{index}"
    if job_uid and index_env:
        return f"{job_uid}-{{index}}"
    return uid


NODE_LOCAL_EVERY = "podline.io/checkpoint-node-local-every"
SHARED_EVERY = "podline.io/checkpoint-shared-every"


def checkpoint_policy(annotations: dict[str, str]) -> dict[str, int]:
    """L2 after every init container by default; L3 (the shared directory: another node can resume from it)
    when the pod asks, as a Pipeline's `checkpoint` does. The values were checked at apply."""
    return {"nodeLocalEvery": int(annotations.get(NODE_LOCAL_EVERY, "1")),
            "sharedEvery": int(annotations.get(SHARED_EVERY, "0"))}


def plan_workspace(pod: Pod, uid: str, volumes: list[dict[str, Any]], index_env: str | None,
                   dirs: dict[str, str | None] | None) -> dict[str, Any] | None:
    name = shared_volume(pod)
    if name is None:
        return None
    volume = next(v for v in volumes if v["name"] == name)
    key = workspace_key(pod, uid, index_env)
    return {"volume": name, "key": key, "resumable": key != uid,
            "medium": "Memory" if volume.get("medium") == "Memory" else "Disk", "sizeLimit": volume.get("sizeLimit"),
            "checkpoint": checkpoint_policy(pod.metadata.annotations),
            "dirs": {"shared": (dirs or {}).get("shared"), "scratch": (dirs or {}).get("scratch")}}
