"""Argo parameters whose value comes from a ConfigMap (`valueFrom.configMapKeyRef`), read once, at the workflow's
first pass.

Argo resolves them in its controller, not in the pod: the workflow's arguments and a template's input
parameters take the key's value as their `value`. podline reads them when the workflow starts (its later
changes to the ConfigMap do not reach a running workflow, as with the WorkflowTemplates it stores) and keeps
the values in the workflow's internal state; the walk sees them as literal values. A missing ConfigMap or key
takes `valueFrom.default` when there is one, as in Argo; else it errs the workflow, unless `optional`: the
parameter then keeps its `default` (or ""). Templates reached through templateRef are not read (left alone)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from podline.api.core import ConfigMap

Lookup = Callable[[str], ConfigMap | None]  # a ConfigMap of the workflow's namespace by name
Values = dict[str, dict[str, str]]  # "" (the workflow's arguments) or a template's name -> parameter -> value


class Unresolved(Exception):
    """A configMapKeyRef that cannot be read: the message names the field path."""


def configmap_values(spec: dict[str, Any], lookup: Lookup) -> Values:
    """The value of every parameter of the arguments and of the templates' inputs that names a ConfigMap key."""
    values: Values = {}
    places = [("", "spec.arguments.parameters", spec.get("arguments", {}).get("parameters", []))]
    places += [(t["name"], f"spec.templates[{i}].inputs.parameters", t.get("inputs", {}).get("parameters", []))
               for i, t in enumerate(spec.get("templates", []))]
    for owner, where, params in places:
        for j, param in enumerate(params):
            ref = param.get("valueFrom", {}).get("configMapKeyRef")
            if ref is not None:
                values.setdefault(owner, {})[param["name"]] = _read(ref, param, lookup,
                                                                    f"{where}[{j}].valueFrom.configMapKeyRef")
    return values


def _read(ref: dict[str, Any], param: dict[str, Any], lookup: Lookup, where: str) -> str:
    found = lookup(ref["name"])
    if found is not None and ref["key"] in found.data:
        return found.data[ref["key"]]
    if "default" in param.get("valueFrom", {}):  # Argo's fallback, optional or not
        return str(param["valueFrom"]["default"])
    if ref.get("optional"):
        return str(param.get("default", ""))
    missing = f'configmap "{ref["name"]}" not found' if found is None else \
        f'key "{ref["key"]}" not found in configmap "{ref["name"]}"'
    raise Unresolved(f"{where}: {missing}")


def with_values(spec: dict[str, Any], values: Values) -> dict[str, Any]:
    """The spec with those values as the parameters' own (the spec itself when there are none)."""
    if not values:
        return spec
    out = copy.deepcopy(spec)
    for param in out.get("arguments", {}).get("parameters", []):
        if param["name"] in values.get("", {}):
            param["value"] = values[""][param["name"]]
    for template in out.get("templates", []):
        for param in template.get("inputs", {}).get("parameters", []):
            if param["name"] in values.get(template["name"], {}):
                param["value"] = values[template["name"]][param["name"]]
    return out
