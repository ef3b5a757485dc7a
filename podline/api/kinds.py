"""Which (apiVersion, kind) pairs exist and their models (the names the CLI accepts are in `api.names`)."""

from __future__ import annotations

from collections.abc import Iterable

from podline.api.base import Resource
from podline.api.batch import Job
from podline.api.core import ConfigMap, Pod, Secret
from podline.api.dataset import Dataset
from podline.api.pipeline import Pipeline
from podline.api.workflow import ClusterWorkflowTemplate, Workflow, WorkflowTemplate

MODELS: dict[tuple[str, str], type[Resource]] = {
    ("v1", "Pod"): Pod,
    ("v1", "ConfigMap"): ConfigMap,
    ("v1", "Secret"): Secret,
    ("batch/v1", "Job"): Job,
    ("podline.io/v1alpha1", "Pipeline"): Pipeline,
    ("podline.io/v1alpha1", "Dataset"): Dataset,
    ("argoproj.io/v1alpha1", "Workflow"): Workflow,
    ("argoproj.io/v1alpha1", "WorkflowTemplate"): WorkflowTemplate,
    ("argoproj.io/v1alpha1", "ClusterWorkflowTemplate"): ClusterWorkflowTemplate,
}


ARGO_KINDS = frozenset(kind for api_version, kind in MODELS if api_version.startswith("argoproj.io/"))
CORE_KINDS = frozenset(kind for _, kind in MODELS) - ARGO_KINDS


def build_validators(kinds: Iterable[str]) -> None:
    """Build these kinds' validators now. Models build theirs when first used (`defer_build` in api.base), so a
    CLI command pays only for the kinds it reads; the long-lived controller builds those it serves once, after
    a pass, so that later passes never pay for it (P1: a first Job validation inside a pass tripled the time
    from apply to the job array's id)."""
    wanted = set(kinds)
    for (_, kind), model in MODELS.items():
        if kind in wanted:
            model.model_rebuild()
