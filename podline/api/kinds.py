"""Which (apiVersion, kind) pairs exist, their models, and the kubectl-style names the CLI accepts."""

from __future__ import annotations

from podline.api.base import Resource
from podline.api.batch import Job
from podline.api.core import ConfigMap, Pod, Secret
from podline.api.pipeline import Pipeline

MODELS: dict[tuple[str, str], type[Resource]] = {
    ("v1", "Pod"): Pod,
    ("v1", "ConfigMap"): ConfigMap,
    ("v1", "Secret"): Secret,
    ("batch/v1", "Job"): Job,
    ("podline.io/v1alpha1", "Pipeline"): Pipeline,
}

KIND_ALIASES: dict[str, str] = {
    "pod": "Pod", "pods": "Pod", "po": "Pod",
    "job": "Job", "jobs": "Job",
    "configmap": "ConfigMap", "configmaps": "ConfigMap", "cm": "ConfigMap",
    "secret": "Secret", "secrets": "Secret",
    "pipeline": "Pipeline", "pipelines": "Pipeline",
    "workflow": "Workflow", "workflows": "Workflow", "wf": "Workflow",
    "dataset": "Dataset", "datasets": "Dataset",
}

KNOWN_KINDS = {kind for _, kind in MODELS}


def resolve_kind(name: str) -> str:
    """Map `po`, `pods`, `Pod`, `job.batch` … to the canonical kind; raise ValueError if unknown."""
    base = name.split(".", 1)[0].lower()
    kind = KIND_ALIASES.get(base)
    if kind is None:
        raise ValueError(f"unknown resource type {name!r}")
    if kind not in KNOWN_KINDS:
        raise ValueError(f"resource type {kind} is not available yet in this podline")
    return kind
