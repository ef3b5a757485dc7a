"""What a workflow's first pass fixes for the rest of its run: the templates it reaches through
(Cluster)WorkflowTemplates, stored in its status as Argo stores them, and the parameter values it reads from
ConfigMaps. Later changes to those objects do not reach a running workflow."""

from __future__ import annotations

from typing import Any

from podline.api.core import ConfigMap
from podline.api.errors import InvalidObject
from podline.api.template_refs import Lookup, Unresolved, effective_spec, stored_templates
from podline.api.workflow_checks import check_merged
from podline.controller.argo_configmaps import Unresolved as ConfigMapUnresolved
from podline.controller.argo_configmaps import configmap_values
from podline.controller.context import Ctx
from podline.store import Obj, Store


def template_lookup(store: Store, namespace: str, applied: dict[tuple[str, str, str | None], dict] | None = None
                    ) -> Lookup:
    """Find a (Cluster)WorkflowTemplate's spec by name: among `applied` (objects being applied) first, then
    in the store."""
    def lookup(cluster: bool, name: str) -> dict[str, Any] | None:
        kind, where = ("ClusterWorkflowTemplate", "") if cluster else ("WorkflowTemplate", namespace)
        if applied and (kind, where, name) in applied:
            return applied[(kind, where, name)]
        obj = store.get(kind, where, name)
        return None if obj is None or obj.deleted_at else obj.manifest["spec"]
    return lookup


def fix_at_start(ctx: Ctx, wf: Obj) -> str | None:
    """At the first pass: copy the templates the workflow reaches through WorkflowTemplates into its status,
    as Argo does, so later changes to them do not reach a running workflow, and read the parameters it takes
    from ConfigMaps (`controller.argo_configmaps`); the problem if one is missing."""
    lookup = template_lookup(ctx.store, wf.namespace)
    try:
        spec = effective_spec(wf.manifest["spec"], lookup)
        stored = stored_templates(spec, lookup)
    except Unresolved as exc:
        return f"{exc.path}: {exc.problem}"
    if spec is not wf.manifest["spec"]:
        try:  # the template object may have changed since apply checked it
            check_merged(wf.manifest["spec"], spec)
        except InvalidObject as exc:
            return f"{exc.path}: {exc.problem}"
        wf.status["storedWorkflowTemplateSpec"] = spec
    if stored:
        wf.status["storedTemplates"] = stored
    try:
        values = configmap_values(spec, lambda name: _configmap(ctx, wf.namespace, name))
    except ConfigMapUnresolved as exc:
        return str(exc)
    if values:
        wf.internal["configMapValues"] = values
    return None


def _configmap(ctx: Ctx, namespace: str, name: str) -> ConfigMap | None:
    found = ctx.lookup("ConfigMap", namespace, name)
    return found if isinstance(found, ConfigMap) else None
