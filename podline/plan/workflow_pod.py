"""One Argo container or script template, parameters already substituted, as a podline Pod.

A workflow step is a pod, as in Argo: one main container (the template's `container`, or its `script` with
the source written to /argo/staging/script and that path appended to the command), restartPolicy Never
(a retry is a new pod), the workflow's and the template's volumes, and podMetadata annotations (so
`slurm.hpk.io/flags` on a workflow reaches sbatch). What Argo's executor does inside the pod is described
for the pod runner in an `argo` plan section (see podline.runtime.argo_io): each path it reads or writes
in the container gets a covering emptyDir unless a volume of the template already covers it, so the
runner can reach it from the host under every runtime.
"""

from __future__ import annotations

import math
import posixpath
from typing import Any

from podline.api.pilot import PilotSize
from podline.api.quantity import cpu_millis, memory_bytes, parse_quantity
from podline.api.slurmflags import FLAG_ANNOTATIONS
from podline.plan.argo_expr import ExpressionError, parse_duration

SCRIPT_PATH = "/argo/staging/script"
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
NODE_ANNOTATION = "workflows.argoproj.io/node-name"
MAX_POD_NAME = 253


def _deadlines(template: dict[str, Any]) -> list[int]:
    """The template's activeDeadlineSeconds and timeout (Argo: the pod's own deadline) in whole seconds; given as
    `{{…}}`, they were substituted just before, and a value that is no number errors the step."""
    out = []
    try:
        if template.get("activeDeadlineSeconds") is not None:
            out.append(int(str(template["activeDeadlineSeconds"]).strip()))
        if template.get("timeout"):
            out.append(max(1, math.ceil(parse_duration(template["timeout"]))))
    except (ValueError, ExpressionError) as exc:
        raise StepPodError(f"the template's deadline is not a duration: {exc}") from None
    if any(d < 1 for d in out):
        raise StepPodError("the template's deadline must be at least 1 second")
    return out


class StepPodError(ValueError):
    """The template cannot become a pod (e.g. an output path directly in /)."""


def pilot_size(wanted: PilotSize, templates: list[dict[str, Any]]) -> PilotSize:
    """The pilot allocation's size: as given, or (`"true"`) room for the workflow's largest step, at least one
    core: its steps then run one at a time, as a chain does (a size given by hand makes room for more). A step
    whose resources are templated counts as no request; one that turns out larger runs as a job of its own."""
    if wanted.cpu:
        return wanted
    largest = {"cpu": 1000, "memory": 0, "gpu": 0}
    for template in templates:
        main = template.get("container") or template.get("script")
        if not isinstance(main, dict):
            continue
        res = main.get("resources") or {}
        want = {**(res.get("requests") or {}), **(res.get("limits") or {})}
        for key, field, parse in (("cpu", "cpu", cpu_millis), ("memory", "memory", memory_bytes),
                                  ("gpu", "nvidia.com/gpu", lambda v: int(parse_quantity(v)))):
            try:
                largest[key] = max(largest[key], parse(want.get(field, 0)))
            except (ValueError, TypeError):
                continue
    return PilotSize(cpu=math.ceil(largest["cpu"] / 1000) * 1000, memory=largest["memory"], gpu=largest["gpu"],
                     idle=wanted.idle, time=wanted.time)


def pilot_flags_match(workflow_spec: dict[str, Any], template: dict[str, Any]) -> bool:
    """Whether a step may run in the pilot as far as Slurm flags go: the pilot job carries the workflow's own
    (podMetadata) flags, so a template asking for other ones (a partition, a constraint, exclusivity) gets the
    job of its own it asks for."""
    shared = workflow_spec.get("podMetadata", {}).get("annotations", {})
    own = template.get("metadata", {}).get("annotations", {})
    return all(own[key] == shared.get(key) for key in FLAG_ANNOTATIONS if key in own)


def pod_name(workflow: str, template: str, node_id: str) -> str:
    """`<workflow>-<template>-<hash>` as Argo v3.4+ names pods (the hash is the node id's); the pod of a
    workflow whose entrypoint is itself a container is named after the workflow, as Argo names it."""
    if node_id == workflow:
        return workflow
    digits = node_id.rsplit("-", 1)[-1]
    name = f"{workflow}-{template.lower()}"[:MAX_POD_NAME - len(digits) - 1].rstrip("-.")
    return f"{name}-{digits}"


def claim_name(workflow: str, template: dict[str, Any]) -> str:
    """A volumeClaimTemplate's claim, named as Argo names the PVC it creates: `<workflow>-<template name>`."""
    return f"{workflow}-{template['metadata']['name']}"


def _read_only_mounts(mounts: list[dict[str, Any]], volumes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    claims = {v["name"] for v in volumes if v.get("persistentVolumeClaim", {}).get("readOnly")}
    return [m for m in mounts if m.get("readOnly") or m["name"] in claims]


def _covered(path: str, mounts: list[dict[str, Any]]) -> bool:
    return any(path == m["mountPath"].rstrip("/") or path.startswith(m["mountPath"].rstrip("/") + "/")
               for m in mounts)


def _io_volumes(paths: list[str], mounts: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """emptyDirs (volumes, volumeMounts) over the parent directories of `paths` no mount covers yet."""
    parents = sorted({posixpath.dirname(posixpath.normpath(p)) for p in paths if not _covered(p, mounts)})
    chosen: list[str] = []
    for parent in parents:
        if parent == "/":
            raise StepPodError("input and output paths must be inside a directory, not directly in /")
        if not any(parent == c or parent.startswith(c + "/") for c in chosen):
            chosen.append(parent)
    volumes = [{"name": f"argo-io-{i}", "emptyDir": {}} for i in range(len(chosen))]
    new_mounts = [{"name": f"argo-io-{i}", "mountPath": d} for i, d in enumerate(chosen)]
    return volumes, new_mounts


def _sidecar(sidecar: dict[str, Any], main_mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """An Argo sidecar as a Kubernetes one (an init container that keeps running): it starts just before main,
    where Argo starts both at once, and is stopped when main is done, as Argo's executor kills sidecars."""
    container = {k: v for k, v in sidecar.items() if k != "mirrorVolumeMounts"}
    if sidecar.get("mirrorVolumeMounts"):
        own = {m["mountPath"] for m in container.get("volumeMounts", [])}
        container["volumeMounts"] = [*container.get("volumeMounts", []),
                                     *(m for m in main_mounts if m["mountPath"] not in own)]
    return {**container, "restartPolicy": "Always"}


def step_pod(workflow: dict[str, Any], node: dict[str, Any], template: dict[str, Any],
             input_artifacts: list[dict[str, Any]], artifacts_dir: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(pod name, Pod manifest, the runner's `argo` section) for one Pod node.

    `template` is substituted; `input_artifacts` are [{name, path, from|raw, optional}] already resolved to
    places on the shared directory; output artifacts go to `artifacts_dir/<name>`.
    """
    meta, spec = workflow["metadata"], workflow["spec"]
    is_script = "script" in template
    main = dict(template["script"] if is_script else template["container"])
    source = main.pop("source", None)
    main["name"] = "main"
    if is_script:
        main["args"] = [*main.get("args", []), SCRIPT_PATH]
    mounts = list(main.get("volumeMounts", []))
    outputs = template.get("outputs", {})
    out_params = [p for p in outputs.get("parameters", []) if "path" in p.get("valueFrom", {})]
    out_artifacts = [a for a in outputs.get("artifacts", []) if a.get("path")]
    wanted = [a["path"] for a in input_artifacts] + [p["valueFrom"]["path"] for p in out_params]
    wanted += [a["path"] for a in out_artifacts] + ([SCRIPT_PATH] if is_script else [])
    read_only = _read_only_mounts(mounts, [*spec.get("volumes", []), *template.get("volumes", [])])
    for path in [a["path"] for a in input_artifacts] + ([SCRIPT_PATH] if is_script else []):
        if _covered(path, read_only):
            raise StepPodError(f"input path {path} is inside a read-only volume: the step's inputs cannot go there")
    io_volumes, io_mounts = _io_volumes(wanted, mounts)
    main["volumeMounts"] = mounts + io_mounts
    annotations = {**spec.get("podMetadata", {}).get("annotations", {}),
                   **template.get("metadata", {}).get("annotations", {}), NODE_ANNOTATION: node["name"]}
    labels = {**spec.get("podMetadata", {}).get("labels", {}), **template.get("metadata", {}).get("labels", {}),
              WORKFLOW_LABEL: meta["name"]}
    claims = [{"name": t["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim_name(meta["name"], t)}}
              for t in spec.get("volumeClaimTemplates", [])]
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [main],
                                "volumes": [*spec.get("volumes", []), *claims, *template.get("volumes", []),
                                            *io_volumes]}
    if template.get("sidecars"):
        pod_spec["initContainers"] = [_sidecar(s, main["volumeMounts"]) for s in template["sidecars"]]
    deadlines = _deadlines(template)
    if deadlines:
        pod_spec["activeDeadlineSeconds"] = min(deadlines)
    name = pod_name(meta["name"], template["name"], node["id"])
    manifest = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": meta.get("namespace", "default"), "labels": labels,
                             "annotations": annotations},
                "spec": pod_spec}
    io: dict[str, Any] = {
        "container": "main", "result": True,
        "files": [{"path": SCRIPT_PATH, "content": source, "mode": 0o755}] if is_script else [],
        "inputArtifacts": input_artifacts,
        "parameters": [{"name": p["name"], "path": p["valueFrom"]["path"],
                        **({"default": p["valueFrom"]["default"]} if "default" in p["valueFrom"] else {})}
                       for p in out_params],
        "artifacts": [{"name": a["name"], "path": a["path"], "to": posixpath.join(artifacts_dir, a["name"]),
                       "optional": bool(a.get("optional"))} for a in out_artifacts],
    }
    return name, manifest, io
