"""Argo's WorkflowTemplates as a Workflow sees them: `templateRef` calls and `workflowTemplateRef` specs.

Resolved by one rule in two places: `podline apply` refuses a reference to a template that is not there (as
`argo submit` does), and the controller, at a workflow's first pass, copies every template the workflow can
reach into its status (`storedTemplates`, and `storedWorkflowTemplateSpec` for a workflowTemplateRef, as
Argo keeps them), so a WorkflowTemplate changed or deleted later does not change a workflow already running.

Pure functions over manifest dicts; the caller supplies `lookup`, which finds a (Cluster)WorkflowTemplate's
spec by name (in the workflow's namespace, or cluster-wide).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

Lookup = Callable[[bool, str], dict[str, Any] | None]  # (cluster-scoped?, name) -> that template object's spec
LOCAL = "local"  # the scope of the workflow's own templates (with workflowTemplateRef: the template's, merged)


class Unresolved(Exception):
    """A reference names a template that does not exist (`path` is the field in the workflow's document)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


def kind_word(cluster: bool) -> str:
    return "ClusterWorkflowTemplate" if cluster else "WorkflowTemplate"


def scope_of(ref: dict[str, Any]) -> str:
    """The scope a templateRef's template is looked up in: `namespaced/NAME` or `cluster/NAME` (Argo's keys)."""
    return f"{'cluster' if ref.get('clusterScope') else 'namespaced'}/{ref['name']}"


def _merge_named(base: list[dict[str, Any]], own: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lists keyed by `name` (Argo's patch merge key for arguments): an own entry replaces the base's of that
    name in place; new names are appended."""
    mine = {item["name"]: item for item in own}
    merged = [copy.deepcopy(mine.pop(item["name"], item)) for item in base]
    return merged + [copy.deepcopy(item) for item in own if item["name"] in mine]


def merge_spec(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """A Workflow's spec made from a WorkflowTemplate's (`base`) and its own fields, which win; arguments merge by
    parameter and artifact name, as Argo's JoinWorkflowSpec does."""
    merged = copy.deepcopy(base)
    merged.pop("workflowTemplateRef", None)
    for key, value in own.items():
        if key == "workflowTemplateRef":
            continue
        if key == "arguments":
            args = merged.setdefault("arguments", {})
            for field in ("parameters", "artifacts"):
                if field in value:
                    args[field] = _merge_named(args.get(field, []), value[field])
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def calls(templates: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path below `templates`, call) of every step and DAG task of these templates."""
    for i, template in enumerate(templates):
        for g, group in enumerate(template.get("steps") or []):
            for k, step in enumerate(group):
                yield f"[{i}].steps[{g}][{k}]", step
        for k, task in enumerate((template.get("dag") or {}).get("tasks", [])):
            yield f"[{i}].dag.tasks[{k}]", task


def effective_spec(spec: dict[str, Any], lookup: Lookup) -> dict[str, Any]:
    """The spec a Workflow runs: its own, or merged onto its workflowTemplateRef's. Raises Unresolved."""
    ref = spec.get("workflowTemplateRef")
    if ref is None:
        return spec
    cluster = bool(ref.get("clusterScope"))
    base = lookup(cluster, ref["name"])
    if base is None:
        raise Unresolved("spec.workflowTemplateRef.name", f"no {kind_word(cluster)} named {ref['name']!r}")
    merged = merge_spec(base, spec)
    if not merged.get("entrypoint"):
        raise Unresolved("spec.entrypoint", f"required: neither the workflow nor {kind_word(cluster)} "
                                            f"{ref['name']!r} names an entrypoint")
    return merged


def stored_templates(spec: dict[str, Any], lookup: Lookup) -> dict[str, dict[str, Any]]:
    """Every template the spec's calls can reach through templateRef, directly or through other
    WorkflowTemplates, keyed `namespaced/WT/TEMPLATE` (or `cluster/…`) as Argo's status.storedTemplates.
    Raises Unresolved naming the workflow's field whose call leads to the missing template."""
    scopes: dict[str, dict[str, dict[str, Any]]] = {}
    # (templates to scan, the workflow's call that led to them, the template object holding them)
    pending: list[tuple[list[dict[str, Any]], str | None, str]] = [(spec.get("templates") or [], None, "")]
    while pending:
        templates, via, owner = pending.pop()
        for path, call in calls(templates):
            ref = call.get("templateRef")
            if ref is None:
                continue
            cluster, key = bool(ref.get("clusterScope")), scope_of(ref)
            if key not in scopes:
                found = lookup(cluster, ref["name"])
                if found is None:
                    _unresolved(via, owner, path, "name", f"no {kind_word(cluster)} named {ref['name']!r}")
                scopes[key] = {t["name"]: t for t in found.get("templates") or []}
                pending.append((found.get("templates") or [], via or f"spec.templates{path}.templateRef",
                                f"{kind_word(cluster)} {ref['name']!r}"))
            if ref["template"] not in scopes[key]:
                _unresolved(via, owner, path, "template",
                            f"no template named {ref['template']!r} in {kind_word(cluster)} {ref['name']!r}")
    return {f"{key}/{name}": template for key, found in scopes.items() for name, template in found.items()}


def _unresolved(via: str | None, owner: str, path: str, field: str, problem: str) -> NoReturn:
    """Raise for a missing template: at the workflow's own call, or (found inside a referenced template object)
    at the call of the workflow's that led there, telling where in that object the broken reference is."""
    if via is None:
        raise Unresolved(f"spec.templates{path}.templateRef.{field}", problem)
    raise Unresolved(via, f"{owner} refers at spec.templates{path}.templateRef to a missing template: {problem}")
