"""Kind names the CLI accepts and well-known Kubernetes keys: plain data, no models.

Kept apart from `api.kinds` (which builds the pydantic models) so that commands that only read the store
(`get`, `describe`, `logs`, `wait`) start without building any model.
"""

from __future__ import annotations

import hashlib
import random
import re
import uuid

# Kubernetes' name rules (used with fullmatch), here so that the CLI's label selectors need no models.
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")

KIND_ALIASES: dict[str, str] = {
    "pod": "Pod", "pods": "Pod", "po": "Pod",
    "job": "Job", "jobs": "Job",
    "configmap": "ConfigMap", "configmaps": "ConfigMap", "cm": "ConfigMap",
    "secret": "Secret", "secrets": "Secret",
    "pipeline": "Pipeline", "pipelines": "Pipeline",
    "workflow": "Workflow", "workflows": "Workflow", "wf": "Workflow",
    "dataset": "Dataset", "datasets": "Dataset",
    "workflowtemplate": "WorkflowTemplate", "workflowtemplates": "WorkflowTemplate", "wftmpl": "WorkflowTemplate",
    "clusterworkflowtemplate": "ClusterWorkflowTemplate", "clusterworkflowtemplates": "ClusterWorkflowTemplate",
    "cwftmpl": "ClusterWorkflowTemplate", "clusterwftmpl": "ClusterWorkflowTemplate", "cwft": "ClusterWorkflowTemplate",
}

# Those api.kinds.MODELS has.
KNOWN_KINDS = frozenset({"Pod", "ConfigMap", "Secret", "Job", "Pipeline", "Dataset", "Workflow", "WorkflowTemplate",
                         "ClusterWorkflowTemplate"})
CLUSTER_SCOPED = frozenset({"ClusterWorkflowTemplate"})  # stored with namespace "" (no -n applies to them)

INDEX_KEY = "batch.kubernetes.io/job-completion-index"  # an Indexed Job's completion index (annotation, label)

SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # as Kubernetes' generateName uses (no vowels: no words)


def member_name(job_name: str, array_id: str, index: int) -> str:
    """The pod name of an index of a job array, `JOB-INDEX-SUFFIX` as Kubernetes names it, with a suffix drawn
    from the array's id: the array's plan template (and each task's runner) knows it before the pod exists."""
    digest = hashlib.sha256(f"{array_id}/{index}".encode()).digest()
    suffix = "".join(SUFFIX_ALPHABET[b % len(SUFFIX_ALPHABET)] for b in digest[:5])
    return f"{job_name}-{index}-{suffix}"[:253]


def member_uid(array_id: str, index: int) -> str:
    """The uid of an index's pod of a job array: drawn from the array's id, so that the plan template (and each
    task's runner, for the downward API's metadata.uid) knows it before the pod object exists."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"podline:{array_id}/{index}"))


def random_suffix(length: int = 5) -> str:
    return "".join(random.choices(SUFFIX_ALPHABET, k=length))


def generated_name(prefix: str) -> str:
    """The name for an object given `metadata.generateName`: the prefix and 5 random characters."""
    return prefix + random_suffix()


def resolve_kind(name: str) -> str:
    """Map `po`, `pods`, `Pod`, `job.batch` … to the canonical kind; raise ValueError if unknown."""
    base = name.split(".", 1)[0].lower()
    kind = KIND_ALIASES.get(base)
    if kind is None:
        raise ValueError(f"unknown resource type {name!r}")
    if kind not in KNOWN_KINDS:
        raise ValueError(f"resource type {kind} is not available yet in this podline")
    return kind
