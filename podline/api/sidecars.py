"""Which init containers are sidecars (`restartPolicy: Always`, Kubernetes 1.29), read from a stored or planned
pod spec (plain dicts). Standard library only: the pod runner imports it, and must start without pydantic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_sidecar(container: Mapping[str, Any]) -> bool:
    """Whether an init container (a dict) is a sidecar."""
    return container.get("restartPolicy") == "Always"


def sidecar_names(pod_spec: Mapping[str, Any]) -> set[str]:
    """The names of a pod spec's (a dict's) sidecars."""
    return {c["name"] for c in pod_spec.get("initContainers") or [] if is_sidecar(c)}
