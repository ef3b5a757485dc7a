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


MERGE_KEYS = {"volumeMounts": "mountPath", "ports": "containerPort"}  # Kubernetes' patch merge keys; else name


def _keyed(items: list[Any], key: str) -> bool:
    return all(isinstance(item, dict) and key in item for item in items)


def strategic_merge(base: Any, own: Any, field: str = "") -> Any:
    """Kubernetes' strategic merge as Argo applies it (JoinWorkflowSpec, templateDefaults): maps merge key by key,
    lists of keyed entries (parameters, volumes, env by name; volumeMounts by mountPath) merge entry by entry;
    anything else: `own` wins. Neither argument is changed."""
    if isinstance(base, dict) and isinstance(own, dict):
        merged = copy.deepcopy(base)
        for key, value in own.items():
            merged[key] = strategic_merge(base[key], value, key) if key in base else copy.deepcopy(value)
        return merged
    key = MERGE_KEYS.get(field, "name")
    if isinstance(base, list) and isinstance(own, list) and _keyed(base, key) and _keyed(own, key):
        mine = {item[key]: item for item in own}
        merged = [strategic_merge(item, mine.pop(item[key])) if item[key] in mine else copy.deepcopy(item)
                  for item in base]
        return merged + [copy.deepcopy(item) for item in own if item[key] in mine]
    return copy.deepcopy(own)


TYPES = ("container", "script", "steps", "dag", "suspend", "resource", "data", "http", "containerSet", "plugin")


def with_defaults(template: dict[str, Any], defaults: dict[str, Any] | None, retry: dict[str, Any] | None
                  ) -> dict[str, Any]:
    """A template as it runs under `spec.templateDefaults` (merged under its own fields; only its own type's
    fields) and `spec.retryStrategy` (when it has none), as Argo's controller applies them."""
    if defaults:
        merged = strategic_merge(defaults, template)
        template = {k: v for k, v in merged.items() if k not in TYPES or k in template}
    if retry is not None and "retryStrategy" not in template:
        template = {**template, "retryStrategy": retry}
    return template


def merge_spec(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """A Workflow's spec made from a WorkflowTemplate's (`base`) and its own fields, which win."""
    merged = strategic_merge({k: v for k, v in base.items() if k != "workflowTemplateRef"},
                             {k: v for k, v in own.items() if k != "workflowTemplateRef"})
    return dict(merged)


def template_calls(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path below the template, call) of its steps or DAG tasks, and of the templates written inline in
    them (their calls resolve where the template holding them does)."""
    own = [(f".steps[{g}][{k}]", step) for g, group in enumerate(template.get("steps") or [])
           for k, step in enumerate(group)]
    own += [(f".dag.tasks[{k}]", task) for k, task in enumerate((template.get("dag") or {}).get("tasks", []))]
    for path, call in own:
        yield path, call
        if isinstance(call.get("inline"), dict):
            for inner, nested in template_calls(call["inline"]):
                yield f"{path}.inline{inner}", nested


def calls(templates: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path below `templates`, call) of every step and DAG task of these templates."""
    for i, template in enumerate(templates):
        for path, call in template_calls(template):
            yield f"[{i}]{path}", call


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
    """The templates the spec's own templates reach through templateRef — the one called, and what it calls in
    turn, by name in its library or through other templateRefs — keyed `namespaced/WT/TEMPLATE` (or
    `cluster/…`) as Argo's status.storedTemplates. A library's templates nobody calls are not read, as Argo
    resolves only what runs. Raises Unresolved naming the workflow's field whose call leads to the missing one."""
    libraries: dict[str, dict[str, tuple[int, dict[str, Any]]]] = {}
    stored: dict[str, dict[str, Any]] = {}
    # (scope, template, its path in its document, the workflow's call that led there, the object holding it)
    pending: list[tuple[str, dict[str, Any], str, str | None, str]] = [
        (LOCAL, t, f"spec.templates[{i}]", None, "") for i, t in enumerate(spec.get("templates") or [])]
    while pending:
        scope, template, where, via, owner = pending.pop()
        for path, call in template_calls(template):
            here = f"{where}{path}"
            ref = call.get("templateRef")
            names = [n for n in (call.get("onExit"), *(h.get("template") for h in (call.get("hooks") or {}).values()))
                     if n] + ([call["template"]] if "template" in call else [])
            targets = [(scope, name, via, owner) for name in names] if scope != LOCAL else []
            if ref is not None:
                cluster, key = bool(ref.get("clusterScope")), scope_of(ref)
                if key not in libraries:
                    found = lookup(cluster, ref["name"])
                    if found is None:
                        _unresolved(via, owner, f"{here}.templateRef.name",
                                    f"no {kind_word(cluster)} named {ref['name']!r}")
                    libraries[key] = {t["name"]: (i, t) for i, t in enumerate(found.get("templates") or [])}
                targets.append((key, ref["template"], via or f"{here}.templateRef",
                                f"{kind_word(cluster)} {ref['name']!r}"))
            for target_scope, name, target_via, target_owner in targets:
                entry = libraries[target_scope].get(name)
                if entry is None:
                    field = ".templateRef.template" if target_scope != scope or scope == LOCAL else ".template"
                    _unresolved(via, owner, f"{here}{field}", f"no template named {name!r} in "
                                f"{target_owner if target_scope != scope else owner}")
                if f"{target_scope}/{name}" not in stored:
                    stored[f"{target_scope}/{name}"] = entry[1]
                    pending.append((target_scope, entry[1], f"spec.templates[{entry[0]}]", target_via, target_owner))
    return stored


def _unresolved(via: str | None, owner: str, field: str, problem: str) -> NoReturn:
    """Raise for a missing template: at the workflow's own call, or (found inside a referenced template object)
    at the call of the workflow's that led there, telling where in that object the broken reference is."""
    if via is None:
        raise Unresolved(field, problem)
    raise Unresolved(via, f"{owner} refers at {field} to a missing template: {problem}")
