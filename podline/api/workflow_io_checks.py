"""Rules of a Workflow's values, each raising `InvalidObject` with the exact field path: arguments a workflow or a
caller passes (unique, given, within their enum), inputs a caller must supply, and a template's inputs and outputs
(their sources must fit the template type). Split from `api.workflow_checks`, which checks how templates, steps
and tasks refer to each other."""

from __future__ import annotations

from collections.abc import Iterable

from podline.api.errors import InvalidObject
from podline.api.workflow import Template
from podline.api.workflow_values import Arguments, Artifact, Inputs, Parameter


def unique(names: Iterable[str], where: str, what: str) -> None:
    """`where` is a format string taking the index, e.g. `spec.templates[{}].name`."""
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise InvalidObject(where.format(i), f"duplicate {what} name {name!r}")
        seen.add(name)


def check_arguments(args: Arguments | None, where: str, values: bool = True) -> None:
    """Arguments given by the workflow or a caller: unique names, and each with a value (`values`; a
    WorkflowTemplate's may leave theirs to the workflow made from it, as Argo allows)."""
    if args is None:
        return
    unique((p.name for p in args.parameters or []), f"{where}.parameters[{{}}].name", "parameter")
    unique((a.name for a in args.artifacts or []), f"{where}.artifacts[{{}}].name", "artifact")
    for i, param in enumerate(args.parameters or []):
        if values and param.value is None and param.value_from is None:
            raise InvalidObject(f"{where}.parameters[{i}].value", "required: an argument needs a value")
        check_enum(param, f"{where}.parameters[{i}]")
    for i, artifact in enumerate(args.artifacts or []):
        check_bucket(artifact, f"{where}.artifacts[{i}]")
        if sources(artifact) != 1:
            raise InvalidObject(f"{where}.artifacts[{i}]", "an artifact argument needs one of from, raw, s3, http")


def check_enum(param: Parameter, where: str) -> None:
    """Argo's `enum`: at least one allowed value, and a literal value is one of them (a `{{…}}` one is known only
    once substituted)."""
    if param.enum is None:
        return
    if not param.enum:
        raise InvalidObject(f"{where}.enum", "must list at least one value")
    if param.value is not None and "{{" not in param.value and param.value not in param.enum:
        allowed = ", ".join(repr(v) for v in param.enum[:10]) + (", …" if len(param.enum) > 10 else "")
        raise InvalidObject(f"{where}.value", f"{param.value!r} is not one of the enum values ({allowed})")


def check_bucket(artifact: Artifact, where: str) -> None:
    if artifact.s3 is not None and artifact.s3.bucket is None:
        raise InvalidObject(f"{where}.s3.bucket", "required: podline has no default artifact repository to take "
                                                  "it from")


def sources(artifact: Artifact) -> int:
    return sum(x is not None for x in (artifact.from_, artifact.raw, artifact.s3, artifact.http))


def check_supplied(inputs: Inputs | None, args: Arguments | None, template: str, where: str) -> None:
    """Every input without a value of its own is supplied by the caller's arguments."""
    if inputs is None:
        return
    given = {p.name for p in (args.parameters or [])} if args else set()
    for param in inputs.parameters or []:
        if param.name not in given and param.value is None and param.default is None and param.value_from is None:
            raise InvalidObject(where, f"inputs.parameters.{param.name} of template {template!r} is not supplied")
    given = {a.name for a in (args.artifacts or [])} if args else set()
    for artifact in inputs.artifacts or []:
        if artifact.name not in given and not sources(artifact) and not artifact.optional:
            raise InvalidObject(where, f"inputs.artifacts.{artifact.name} of template {template!r} is not supplied")


def check_io(template: Template, where: str) -> None:
    for field, io in (("inputs", template.inputs), ("outputs", template.outputs)):
        if io is None:
            continue
        unique((p.name for p in io.parameters or []), f"{where}.{field}.parameters[{{}}].name", "parameter")
        unique((a.name for a in io.artifacts or []), f"{where}.{field}.artifacts[{{}}].name", "artifact")
    runs_container = template.type in ("container", "script")
    for i, artifact in enumerate(template.inputs.artifacts or [] if template.inputs else []):
        check_bucket(artifact, f"{where}.inputs.artifacts[{i}]")
        if runs_container and artifact.path is None:
            raise InvalidObject(f"{where}.inputs.artifacts[{i}].path",
                                f"required: an input artifact of a {template.type} template needs a path")
    if template.outputs is None:
        return
    for i, param in enumerate(template.outputs.parameters or []):
        here = f"{where}.outputs.parameters[{i}]"
        source = param.value_from
        if source is None:
            raise InvalidObject(f"{here}.valueFrom", "required: an output parameter needs valueFrom")
        if runs_container and source.expression is not None:
            raise InvalidObject(f"{here}.valueFrom.expression", f"an output of a {template.type} template comes from "
                                "a path (expressions read the children's outputs of steps and dag templates)")
        if runs_container and source.path is None:
            raise InvalidObject(f"{here}.valueFrom.path", f"required for an output of a {template.type} template")
        if not runs_container and source.parameter is None and source.expression is None:
            raise InvalidObject(f"{here}.valueFrom.parameter",
                                f"required (or an expression) for an output of a {template.type} template")
    for i, artifact in enumerate(template.outputs.artifacts or []):
        for field in ("s3", "http"):
            if getattr(artifact, field) is not None:
                raise InvalidObject(f"{where}.outputs.artifacts[{i}].{field}", "output artifacts pass through the "
                                    "context's shared directory (s3 and http are sources of input artifacts)")
        if runs_container and artifact.from_expression is not None:
            raise InvalidObject(f"{where}.outputs.artifacts[{i}].fromExpression", f"an output of a {template.type} "
                                "template comes from a path (expressions choose among a steps or dag template's)")
        source = artifact.from_ or artifact.from_expression
        field, value = ("path", artifact.path) if runs_container else ("from", source)
        if value is None:
            raise InvalidObject(f"{where}.outputs.artifacts[{i}].{field}",
                                f"required for an output artifact of a {template.type} template")
