"""Turn a stored Pod manifest into the JSON plan the pod runner executes.

The plan is backend- and runtime-neutral: env fully resolved (fieldRef, configMap/secret keys, `$(VAR)`),
volumes described by type (their node-local paths are chosen by the runner where it runs), containers
with command/args kept apart so a container runtime can apply image ENTRYPOINT/CMD rules later, and
`$(VAR)` references left for the runner to expand.
A missing ConfigMap or Secret, or a key a volume's `items` name that it lacks, is a `PlanWaiting`: the pod
stays Pending until it exists, as in Kubernetes. configMap, secret and downwardAPI volumes are mounted
read-only, as kubelet mounts them.

Some downward-API values are not known where the plan is built, so the plan says how to find them instead
(`runtime.expand.entry_value` reads it): the node's name and address (`fieldPath`: the runner asks its own
node), and, in the one plan template of a job array, each index's pod name, labels and annotations
(`byIndex`: the runner picks its task's value by the index variable, as it defines JOB_COMPLETION_INDEX).
"""

from __future__ import annotations

import base64
import math
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from podline.api.core import ConfigMap, Container, InitContainer, Pod, Secret, Volume
from podline.api.dataset import Dataset
from podline.api.env import ResourceFieldSelector
from podline.api.names import member_uid
from podline.api.quantity import cpu_millis, memory_bytes, parse_quantity
from podline.plan.pod_workspace import plan_workspace
from podline.plan.totals import pod_total

PLAN_VERSION = "podline.io/plan/v1"

# lookup(kind, namespace, name) -> validated ConfigMap/Secret (for pods and steps) or Dataset (for pipelines),
# None if there is no such object
Lookup = Callable[[str, str, str], ConfigMap | Secret | Dataset | None]


class PlanWaiting(Exception):
    """The pod cannot start yet (e.g. a referenced ConfigMap is missing); reason as kubelet reports it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def pod_requests(pod: Pod) -> dict[str, int]:
    """Effective pod request as the scheduler sees it (`plan.totals.pod_total`)."""
    def amounts(c: Container) -> dict[str, int]:
        req = c.resources.effective_requests()
        return {"cpu": cpu_millis(req.get("cpu", 0)), "memory": memory_bytes(req.get("memory", 0)),
                "gpu": int(parse_quantity(req.get("nvidia.com/gpu", 0)))}
    return pod_total([(c.is_sidecar, amounts(c)) for c in pod.spec.init_containers],
                     [amounts(c) for c in pod.spec.containers])


# Known only on the node the pod runs on: the runner resolves them there (runtime.expand.node_field).
NODE_FIELDS = frozenset({"spec.nodeName", "status.hostIP", "status.podIP"})
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", '"': '\\"', "\\": "\\\\"}


@dataclass(frozen=True)
class Members:
    """The pods one job-array plan template stands for: each index's metadata (name, labels, annotations)
    and the variable (JOB_COMPLETION_INDEX) whose value tells an array task which of them it is."""

    index_env: str
    metadata: Mapping[int, Mapping[str, Any]]


def go_quote(text: str) -> str:
    """Go's `strconv.Quote` (fmt's `%q`), which kubelet uses for label and annotation values: `"` and `\\`
    escaped, printable characters as they are, the rest as `\\n`, `\\x1b`, `\\u00a0`, `\\U000e0001`.

    A lone surrogate (possible in JSON input, never valid UTF-8) is U+FFFD, as Go's decoders make it.
    """
    out = ['"']
    for ch in text:
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            ch, code = "\ufffd", 0xFFFD
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch == " " or unicodedata.category(ch)[0] in "LMNPS":  # Go's IsPrint: graphic, no space but ' '
            out.append(ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def format_map(items: Mapping[str, str]) -> str:
    """A downwardAPI `labels`/`annotations` file as kubelet writes it: `key="value"` lines sorted by key."""
    return "\n".join(f"{key}={go_quote(value)}" for key, value in sorted(items.items()))


def _metadata(pod: Pod) -> dict[str, Any]:
    meta = pod.metadata
    return {"name": meta.name or "", "namespace": meta.namespace, "labels": meta.labels,
            "annotations": meta.annotations}


def _field_value(meta: Mapping[str, Any], uid: str, path: str) -> str:
    """A metadata field's value; `meta` as a pod manifest's metadata (name, namespace, labels, annotations)."""
    simple = {"metadata.name": meta.get("name") or "", "metadata.namespace": meta.get("namespace", "default"),
              "metadata.uid": uid}
    if path in simple:
        return simple[path]
    if path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(path[len("metadata."):]) or {})
    field, key = path[len("metadata."):].split("['", 1)
    return (meta.get(field) or {}).get(key.rstrip("']"), "")


def field_source(pod: Pod, uid: str, path: str, members: Members | None = None) -> dict[str, Any]:
    """A fieldRef's value as the plan carries it: `value`, plus `fieldPath` for a field of the node (resolved
    by the runner) or `byIndex` when the pods of a job array differ in it (chosen by the runner per task)."""
    if path in NODE_FIELDS:
        return {"value": "", "fieldPath": path}
    meta = _metadata(pod)
    if members is None or not members.metadata:
        return {"value": _field_value(meta, uid, path)}
    per_index = {str(index): _field_value({**meta, **member}, member_uid(uid, index), path)
                 for index, member in members.metadata.items()}
    distinct = set(per_index.values())
    if len(distinct) == 1:
        return {"value": distinct.pop()}
    return {"value": _field_value(meta, uid, path), "byIndex": {"env": members.index_env, "values": per_index}}


def resource_source(pod: Pod, container: Container, ref: ResourceFieldSelector) -> dict[str, Any]:
    """A resourceFieldRef's value as the plan carries it: the container's request or limit in units of the
    divisor, rounded up, as the kubelet gives it; a request not set is the limit (as the API server defaults
    it), else 0; a limit not set is what the node has, so the runner works it out (`resourcePath`)."""
    named = ref.container_name or container.name
    target = next((c for c in [*pod.spec.init_containers, *pod.spec.containers] if c.name == named), None)
    if target is None:
        raise PlanWaiting("CreateContainerConfigError", f"resourceFieldRef: no container {named!r} in the pod")
    kind, resource = ref.resource.split(".", 1)
    given = getattr(target.resources, kind).get(resource)
    if given is None and kind == "requests":
        given = target.resources.limits.get(resource, "0")
    if given is None:
        return {"value": "", "resourcePath": ref.resource, "divisor": ref.divisor}
    return {"value": str(math.ceil(parse_quantity(given) / parse_quantity(ref.divisor)))}


def _source_data(lookup: Lookup, kind: str, namespace: str, name: str, optional: bool) -> dict[str, bytes] | None:
    obj = lookup(kind, namespace, name)
    if obj is None:
        if optional:
            return None
        raise PlanWaiting("CreateContainerConfigError", f'{kind.lower()} "{name}" not found')
    if isinstance(obj, Secret):
        return obj.decoded()
    data = {k: v.encode() for k, v in obj.data.items()}
    data.update({k: base64.b64decode(v) for k, v in obj.binary_data.items()})
    return data


def _key_value(lookup: Lookup, kind: str, pod: Pod, name: str, key: str, optional: bool) -> str | None:
    data = _source_data(lookup, kind, pod.metadata.namespace, name, optional)
    if data is None or key not in data:
        if optional:
            return None
        raise PlanWaiting("CreateContainerConfigError", f'couldn\'t find key {key} in {kind} '
                          f'{pod.metadata.namespace}/{name}')
    return data[key].decode("utf-8", errors="replace")


def resolve_env(container: Container, pod: Pod, uid: str, lookup: Lookup,
                members: Members | None = None) -> list[dict[str, Any]]:
    """The container's environment in definition order, references resolved to literal values.

    `$(VAR)` expansion of `value` entries (and of command/args) is left to the runner, which knows the
    complete environment — including what only exists where the pod runs, like an array task's index; so
    are the fieldRefs that depend on the node or, in a job array's template, on the index (`field_source`).
    """
    env: list[dict[str, Any]] = []
    for source in container.env_from:
        ref = source.config_map_ref or source.secret_ref
        assert ref is not None
        kind = "ConfigMap" if source.config_map_ref else "Secret"
        data = _source_data(lookup, kind, pod.metadata.namespace, ref.name, ref.optional) or {}
        env.extend({"name": source.prefix + key, "value": value.decode("utf-8", errors="replace"),
                    "expand": False} for key, value in data.items())
    for var in container.env:
        if var.value_from is None:
            env.append({"name": var.name, "value": var.value or "", "expand": True})
            continue
        src = var.value_from
        if src.field_ref is not None:
            env.append({"name": var.name, **field_source(pod, uid, src.field_ref.field_path, members),
                        "expand": False})
            continue
        if src.resource_field_ref is not None:
            env.append({"name": var.name, **resource_source(pod, container, src.resource_field_ref), "expand": False})
            continue
        if src.config_map_key_ref is not None:
            ref = src.config_map_key_ref
            value: str | None = _key_value(lookup, "ConfigMap", pod, ref.name, ref.key, ref.optional)
        else:
            assert src.secret_key_ref is not None
            ref = src.secret_key_ref
            value = _key_value(lookup, "Secret", pod, ref.name, ref.key, ref.optional)
        if value is not None:
            env.append({"name": var.name, "value": value, "expand": False})
    return env


def _files(kind: str, items: list[Any], data: dict[str, bytes] | None, default_mode: int,
           optional: bool) -> list[dict[str, Any]]:
    """The files of a configMap or secret volume (none for a missing optional one). An item naming a key the
    object lacks keeps the pod from starting, as kubelet's mount does, unless the volume is optional."""
    if data is None:
        return []
    if items:
        missing = next((i.key for i in items if i.key not in data), None)
        if missing is not None and not optional:
            what = "config" if kind == "ConfigMap" else "secret"
            raise PlanWaiting("CreateContainerConfigError",
                              f"{kind.lower()} references non-existent {what} key: {missing}")
        chosen = [(i.path, data[i.key], i.mode) for i in items if i.key in data]
    else:
        chosen = [(key, value, None) for key, value in sorted(data.items())]
    return [{"path": path, "data": base64.b64encode(value).decode(), "mode": mode or default_mode}
            for path, value, mode in chosen]


def claim_dir(shared: str, namespace: str, claim: str) -> str:
    """Where a persistentVolumeClaim lives: a directory of that name on the context's shared directory (the
    shared filesystem every node sees), created on first use and kept until it is removed by hand."""
    return f"{shared.rstrip('/')}/volumes/{namespace}/{claim}"


def plan_volume(volume: Volume, pod: Pod, uid: str, lookup: Lookup, shared: str | None = None,
                members: Members | None = None) -> dict[str, Any]:
    ns = pod.metadata.namespace
    if volume.persistent_volume_claim is not None:
        if not shared:
            raise PlanWaiting("NoSharedDirectory", "a persistentVolumeClaim needs the context's shared directory")
        claim = volume.persistent_volume_claim
        return {"name": volume.name, "type": "hostPath", "path": claim_dir(shared, ns, claim.claim_name),
                "hostPathType": "DirectoryOrCreate", "readOnly": claim.read_only}
    if volume.empty_dir is not None:
        limit = volume.empty_dir.size_limit
        return {"name": volume.name, "type": "emptyDir", "medium": volume.empty_dir.medium,
                "sizeLimit": memory_bytes(limit) if limit is not None else None,
                "sizeLimitAsWritten": str(limit) if limit is not None else None}  # for kubelet's eviction words
    if volume.host_path is not None:
        return {"name": volume.name, "type": "hostPath", "path": volume.host_path.path,
                "hostPathType": volume.host_path.type}
    # configMap, secret and downwardAPI volumes: files the pod reads, never writes (kubelet mounts them read-only)
    if volume.config_map is not None:
        src = volume.config_map
        data = _source_data(lookup, "ConfigMap", ns, src.name, src.optional)
        files = _files("ConfigMap", src.items, data, src.default_mode, src.optional)
    elif volume.secret is not None:
        sec = volume.secret
        data = _source_data(lookup, "Secret", ns, sec.secret_name, sec.optional)
        files = _files("Secret", sec.items, data, sec.default_mode, sec.optional)
    else:
        assert volume.downward_api is not None
        down = volume.downward_api
        files = [_downward_file(item.path, item.mode or down.default_mode,
                                field_source(pod, uid, item.field_ref.field_path, members)) for item in down.items]
    return {"name": volume.name, "type": "files", "files": files, "readOnly": True}


def _downward_file(path: str, mode: int, source: dict[str, Any]) -> dict[str, Any]:
    """A downwardAPI file: `data` (base64) as for any file, with the source's `fieldPath`/`byIndex` (text)
    for a runner to resolve (`runtime.expand.file_bytes`)."""
    text = source.pop("value")
    return {"path": path, "mode": mode, "data": base64.b64encode(text.encode()).decode(), **source}


LOCAL_IMAGES = ("oci:", "oci-archive:", "docker-archive:", "dir:", "rootfs:", "/")


def default_pull_policy(image: str) -> str:
    """Kubernetes' default: `Always` for a registry image tagged `latest` or not tagged, else `IfNotPresent`."""
    if image.startswith(LOCAL_IMAGES) or image.endswith(".sif") or "@" in image:
        return "IfNotPresent"
    last = image.removeprefix("docker://").rsplit("/", 1)[-1]
    return "Always" if ":" not in last or last.endswith(":latest") else "IfNotPresent"


def plan_container(container: Container, pod: Pod, uid: str, lookup: Lookup,
                   members: Members | None = None) -> dict[str, Any]:
    return {
        "name": container.name,
        "image": container.image,
        "imagePullPolicy": container.image_pull_policy or default_pull_policy(container.image),
        "command": list(container.command),
        "args": list(container.args),
        "env": resolve_env(container, pod, uid, lookup, members),
        "workingDir": container.working_dir,
        "mounts": [{"volume": m.name, "mountPath": m.mount_path, "readOnly": m.read_only,
                    "subPath": m.sub_path} for m in container.volume_mounts],
        **({"restartPolicy": "Always"} if isinstance(container, InitContainer) and container.is_sidecar else {}),
        **({"logsAsMessage": True} if container.termination_message_policy == "FallbackToLogsOnError" else {}),
        **({"memoryLimit": str(container.resources.limits["memory"])} if "memory" in container.resources.limits
           else {}),  # enforced by the runner where no cgroup does it (runtime.memory_limit)
    }


def plan_pod(manifest: dict[str, Any], uid: str, lookup: Lookup, runtime: str = "host",
             index_env: str | None = None, images: dict[str, Any] | None = None,
             dirs: dict[str, str | None] | None = None,
             members: Mapping[int, Mapping[str, Any]] | None = None,
             index_names: tuple[str, str] | None = None) -> dict[str, Any]:
    """The complete, self-contained description of one pod attempt for `podline.runtime.pod`.

    With `index_env` (e.g. JOB_COMPLETION_INDEX) the plan is a template for a job array: each task's
    runner defines that variable from its array index, first in the environment; `members` then gives the
    metadata of each index's pod, so that each task's downward API shows its own pod, and `index_names`
    (job name, array id) the rule that names them (`api.names.member_name`). `images` says where
    the node-local image cache is and how to reach registries (see `runtime.engine`). `dirs` (shared,
    scratch) place the checkpoints of a pod in pipeline form (see `plan.pod_workspace`).
    """
    pod = Pod.model_validate(manifest)
    spec = pod.spec
    indexed = Members(index_env, members) if index_env and members else None
    volumes = [plan_volume(v, pod, uid, lookup, (dirs or {}).get("shared"), indexed) for v in spec.volumes]
    read_only = {v["name"] for v in volumes if v.get("readOnly")}  # a read-only claim or files: every mount of it
    return {
        "apiVersion": PLAN_VERSION,
        "pod": _identity(pod, uid, indexed, (*index_names, index_env) if index_names and index_env else None),
        "runtime": runtime,
        "images": images or {},
        "restartPolicy": spec.restart_policy,
        "activeDeadlineSeconds": spec.active_deadline_seconds,
        "terminationGracePeriodSeconds": spec.termination_grace_period_seconds,
        "volumes": volumes,
        "workspace": plan_workspace(pod, uid, volumes, index_env, dirs),
        "indexEnv": index_env,
        "initContainers": [_read_only(plan_container(c, pod, uid, lookup, indexed), read_only)
                           for c in spec.init_containers],
        "containers": [_read_only(plan_container(c, pod, uid, lookup, indexed), read_only) for c in spec.containers],
    }


def _identity(pod: Pod, uid: str, members: Members | None,
              index_names: tuple[str, str, str] | None) -> dict[str, Any]:
    """Who the pod is (its runtime's hostname and HOSTNAME are its name); a job array's template also says
    each index's name, by the rule that makes it or one by one (`runtime.expand.own_pod` picks a task's)."""
    name = field_source(pod, uid, "metadata.name", members)
    identity = {"name": name.pop("value"), "namespace": pod.metadata.namespace, "uid": uid, **name}
    if index_names is not None and members is None:
        identity["namedBy"] = dict(zip(("job", "array", "env"), index_names, strict=True))
    return identity


def _read_only(container: dict[str, Any], volumes: set[str]) -> dict[str, Any]:
    for mount in container["mounts"]:
        if mount["volume"] in volumes:
            mount["readOnly"] = True
    return container
