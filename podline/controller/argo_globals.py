"""The workflow-wide variables Argo offers every template (`workflow.*`), written as Argo writes them.

Argo's controller fills its global scope from the Workflow object at each pass (setGlobalParameters in its
operator.go): the names, parameters, labels and annotations, the creation time in RFC 3339 and in each
strftime character it knows, the priority, and how long the workflow has run. A workflow that uses one of
them must get the same text here, or a step that runs under Argo fails with "unresolved reference" (or
computes something else) under podline. Pure functions over the manifest, so they are tested in isolation;
split from argo_nodes.py, whose Walker calls them.
"""

from __future__ import annotations

import time
from typing import Any

from podline.plan.argo_exprfuncs import go_json
from podline.runtime.files import parse_rfc3339

# Argo's util/strftime FormatChars: the strftime characters it knows, each as Go's time layout renders it
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_PARAMETER_FIELDS = ("name", "default", "value", "valueFrom", "globalName", "enum", "description")  # Go's order


def _text(value: Any) -> str:
    """Argo's AnyString: a YAML number or boolean stands for its text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _strftime(moment: time.struct_time) -> dict[str, str]:
    """What Argo's strftime writes for each character it knows (English names, UTC: the controller's zone)."""
    hour12 = moment.tm_hour % 12 or 12
    return {"B": _MONTHS[moment.tm_mon - 1], "b": _MONTHS[moment.tm_mon - 1][:3], "m": f"{moment.tm_mon:02d}",
            "A": _DAYS[moment.tm_wday], "a": _DAYS[moment.tm_wday][:3], "d": f"{moment.tm_mday:02d}",
            "H": f"{moment.tm_hour:02d}", "I": f"{hour12:02d}", "M": f"{moment.tm_min:02d}",
            "S": f"{moment.tm_sec:02d}", "Y": f"{moment.tm_year:04d}", "y": f"{moment.tm_year % 100:02d}",
            "p": "PM" if moment.tm_hour >= 12 else "AM", "Z": "UTC", "z": "+0000", "L": ".000"}


def creation_globals(stamp: str) -> dict[str, str]:
    """`workflow.creationTimestamp` (RFC 3339 in whole seconds, as Kubernetes keeps it) and its forms
    `.RFC3339`, `.s` (Unix seconds) and `.<strftime character>` (`.Y`, `.m`, `.d`, `.H`, …)."""
    seconds = int(parse_rfc3339(stamp))
    moment = time.gmtime(seconds)
    rfc = time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)
    key = "workflow.creationTimestamp"
    out = {f"{key}.{char}": text for char, text in _strftime(moment).items()}
    out.update({key: rfc, f"{key}.RFC3339": rfc, f"{key}.s": str(seconds)})
    return out


def duration_global(started: str | None, now: float) -> dict[str, str]:
    """`workflow.duration`: seconds since the workflow started, as Go's `%f` writes them (`12.345678`)."""
    if not started:
        return {}
    return {"workflow.duration": f"{max(0.0, now - parse_rfc3339(started)):f}"}


def _parameter_json(parameter: dict[str, Any]) -> str:
    """One of spec.arguments.parameters as Go's json.Marshal writes Argo's Parameter (its fields' order)."""
    fields = []
    for name in _PARAMETER_FIELDS:
        value = parameter.get(name)
        if value is None or (name != "name" and value in ("", [])):
            continue
        if name == "enum":
            text = go_json([_text(v) for v in value])
        elif name == "valueFrom":
            text = go_json(value)
        else:
            text = go_json(_text(value))
        fields.append(f'"{name}":{text}')
    return "{" + ",".join(fields) + "}"


def _map_json(mapping: dict[str, Any] | None) -> str:
    """Labels or annotations as Go marshals a map (keys sorted); none is `null`, as Go writes a nil map."""
    return go_json({k: _text(v) for k, v in mapping.items()}) if mapping else "null"


def manifest_globals(manifest: dict[str, Any]) -> dict[str, str]:
    """The `workflow.*` variables read from the workflow itself (its merged spec, for a workflowTemplateRef)."""
    meta, spec = manifest.get("metadata") or {}, manifest.get("spec") or {}
    parameters = (spec.get("arguments") or {}).get("parameters")
    out = {"workflow.mainEntrypoint": _text(spec.get("entrypoint", "")),
           "workflow.serviceAccountName": _text(spec.get("serviceAccountName") or "")}
    if spec.get("priority") is not None:
        out["workflow.priority"] = _text(spec["priority"])
    out["workflow.parameters"] = out["workflow.parameters.json"] = \
        "[" + ",".join(_parameter_json(p) for p in parameters) + "]" if parameters else "null"
    extra = spec.get("workflowMetadata") or {}
    for kind in ("labels", "annotations"):
        own = meta.get(kind) or {}
        out[f"workflow.{kind}"] = out[f"workflow.{kind}.json"] = _map_json(own)
        for key, value in {**own, **(extra.get(kind) or {})}.items():
            out[f"workflow.{kind}.{key}"] = _text(value)
    return out
