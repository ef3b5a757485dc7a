"""Which (apiVersion, kind) pairs exist and their models (the names the CLI accepts are in `api.names`)."""

from __future__ import annotations

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
