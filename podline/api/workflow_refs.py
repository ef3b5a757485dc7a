"""The `{{…}}` placeholders of a Workflow's templates, checked against what the scope offers where each stands.

Argo's validate step refuses at submit what would otherwise fail only when the step is reached, maybe after
earlier steps ran: `{{inputs.parameters.x}}` in a template that declares no input `x`; `{{workflow.parameters.x}}`
not in spec.arguments (checked only where the arguments are known: a WorkflowTemplate's templates may read the
parameters of the Workflow made from it); `{{steps.x.…}}` naming no step of this template, or one of the same or
a later group; `{{tasks.x.…}}` naming no task of this DAG, or (as an argument, or `.status`) a task this one does
not depend on; an output the called template (when it is in this manifest) does not declare; `{{item}}` in a
step or task without a loop. And, with podline's own parsers: a `when`, a `{{=…}}` or a retryStrategy.expression
that cannot parse, a literal withParam that is no JSON list, a withSequence format without one verb.

Variables Argo does not have under `workflow.`, `inputs.`, `pod.` and a step's or task's fields
(`steps.x.outputs.exitCode`, `workflow.nosuch`) are refused too, as Argo's "failed to resolve". Every other
variable (retries, lastRetry.*, node.name, `{{=…}}`'s names, …) is left to the runtime, which knows them: a false
refusal is worse than a late error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from podline.api.errors import InvalidObject
from podline.api.workflow import Template, WorkflowSpec
from podline.api.workflow_dag import parse_depends
from podline.plan.argo_depends import ExpressionError, quoted
from podline.plan.argo_expr import expand_sequence, parse_items, references
from podline.plan.argo_exprparse import parse as parse_expression
from podline.plan.argo_when import check_when_syntax

MAPS = frozenset({"annotations", "labels", "hooks", "nodeSelector"})  # their keys are names, not fields
# Argo's variables (docs/variables.md) under the roots judged here; others are left to the runtime.
WORKFLOW_VARIABLES = frozenset({"name", "namespace", "uid", "mainEntrypoint", "serviceAccountName", "status",
                                "parameters", "failures", "duration", "priority", "scheduledTime", "creationTimestamp"})
WORKFLOW_PREFIXES = ("parameters.", "annotations.", "labels.", "outputs.parameters.", "outputs.artifacts.",
                     "creationTimestamp.")
NODE_FIELDS = frozenset({"id", "ip", "status", "exitCode", "startedAt", "finishedAt", "hostNodeName", "outputs"})
OUTPUT_KINDS = frozenset({"result", "parameters", "artifacts"})
STAND_IN = "PLACEHOLDER"  # what a `{{…}}` of a `when` is replaced by to parse it
_REFERENCE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.DOTALL)
_OPERAND_EDGE = set("=!<>~&|+-*/^%:?(),")


@dataclass(frozen=True)
class Called:
    """What a step's or task's template offers its callers, when that template is in this manifest."""

    template: str
    kind: str
    parameters: frozenset[str]
    artifacts: frozenset[str]


@dataclass(frozen=True)
class Scope:
    template: str  # as messages name it: "template 'm'"
    kind: str
    inputs: frozenset[str]
    artifacts: frozenset[str]
    parameters: frozenset[str] | None  # the workflow's, None where unknown
    steps: dict[str, Called | None] = field(default_factory=dict)  # the steps (or tasks) one may name
    hidden: dict[str, str] = field(default_factory=dict)  # steps one may not name yet, and why
    ancestors: frozenset[str] | None = None  # tasks this one depends on (None: any, as in the outputs)
    hooked: frozenset[str] = frozenset()  # tasks with hooks: their status is offered to every task
    loop: str | None = None  # the step or task whose fields are read, when it has no loop


def _called(target: Template | None, defaults: Template | None) -> Called | None:
    if target is None:
        return None
    outs = [o for o in (target.outputs, defaults.outputs if defaults else None) if o is not None]
    return Called(target.name or "inline", target.type, frozenset(p.name for o in outs for p in o.parameters or []),
                  frozenset(a.name for o in outs for a in o.artifacts or []))


def _output_problem(tag: str, name: str, rest: list[str], called: Called | None, what: str) -> str | None:
    if called is None or rest[:1] != ["outputs"] or len(rest) < 2:
        return None
    kind, out = rest[1], ".".join(rest[2:])
    if kind == "result" and called.kind in ("steps", "dag", "suspend"):
        return f"{{{{{tag}}}}}: {what} {name!r} calls {called.kind} template {called.template!r}, which has no result"
    for section, declared in (("parameters", called.parameters), ("artifacts", called.artifacts)):
        if kind == section and out and out not in declared:
            return (f"{{{{{tag}}}}}: {what} {name!r} calls template {called.template!r}, which declares no output "
                    f"{section[:-1]} {out!r}")
    return None


def _unknown_variable(tag: str) -> str | None:
    """A `workflow.`, `inputs.` or `pod.` variable Argo does not have (it refuses it at submit: "failed to
    resolve"); None for one it has (or one under another root, left to the runtime)."""
    root, dot, rest = tag.partition(".")
    known = {"workflow": (WORKFLOW_VARIABLES, WORKFLOW_PREFIXES), "pod": (frozenset({"name"}), ()),
             "inputs": (frozenset({"parameters"}), ("parameters.", "artifacts."))}.get(root)
    if known is None or not dot or rest in known[0] or rest.startswith(known[1]):
        return None  # (a bare `{{inputs}}`: Argo's validator judges only the dotted names, and so do we)
    return f"{{{{{tag}}}}}: Argo has no variable {tag!r}"


def problem(tag: str, scope: Scope) -> str | None:
    """Why the placeholder `{{tag}}` cannot resolve where `scope` holds; None if it can (or may)."""
    if tag == "item" or tag.startswith("item."):
        return f"{{{{{tag}}}}}: {scope.loop} has no withItems, withParam or withSequence" if scope.loop else None
    unknown = _unknown_variable(tag)
    if unknown is not None:
        return unknown
    for kind, declared in (("parameters", scope.inputs), ("artifacts", scope.artifacts)):
        prefix = f"inputs.{kind}."
        if tag.startswith(prefix):
            name = tag[len(prefix):] if kind == "parameters" else tag[len(prefix):].split(".")[0]
            if name not in declared:
                return f"{{{{{tag}}}}}: {scope.template} declares no input {kind[:-1]} {name!r}"
            return None
    if tag.startswith("workflow.parameters.") and scope.parameters is not None:
        name = tag[len("workflow.parameters."):]
        if name != "json" and name not in scope.parameters:
            return f"{{{{{tag}}}}}: no parameter {name!r} in spec.arguments.parameters"
        return None
    for root, kind, what in (("steps", "steps", "step"), ("tasks", "dag", "task")):
        if not tag.startswith(f"{root}.") or tag.startswith(f"{root}.name"):
            continue  # `steps.name`, `tasks.name`: Argo's own variables
        name, *rest = tag.split(".")[1:] or [""]
        if scope.kind != kind:
            return f"{{{{{tag}}}}}: {scope.template} is a {scope.kind} template: it has no {root}"
        if name in scope.hidden:
            return f"{{{{{tag}}}}}: {what} {name!r} {scope.hidden[name]}"
        if name not in scope.steps:
            return f"{{{{{tag}}}}}: no {what} named {name!r} in {scope.template}"
        if rest[:1] and (rest[0] not in NODE_FIELDS or (rest[0] == "outputs" and rest[1:2] and
                                                         rest[1] not in OUTPUT_KINDS)):
            return f"{{{{{tag}}}}}: a {what} has no {'.'.join(rest)!r} (Argo offers {', '.join(sorted(NODE_FIELDS))}" \
                   ", outputs.result, outputs.parameters, outputs.artifacts)"
        if kind == "dag" and rest == ["status"] and scope.ancestors is not None and \
                name not in scope.ancestors and name not in scope.hooked:
            return f"{{{{{tag}}}}}: this task does not depend on task {name!r} (its status is known only to tasks " \
                   "that depend on it)"
        return _output_problem(tag, name, rest, scope.steps[name], what)
    return None


def _walk(value: Any, path: str, parent: str = "") -> list[tuple[str, str]]:
    """Every string under `value` with its field path (`.field`, `[i]`, and `[key]` in maps)."""
    if isinstance(value, str):
        return [(path, value)] if "{{" in value else []
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in _walk(v, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [found for k, v in value.items()
                for found in _walk(v, f"{path}[{k}]" if parent in MAPS else f"{path}.{k}", k)]
    return []


def _check_text(text: str, path: str, scope: Scope) -> None:
    if "{{" in _REFERENCE.sub("", text):  # Argo's fasttemplate refuses it too: "cannot find end tag"
        raise InvalidObject(path, f"{quoted(text)}: a '{{{{' has no closing '}}}}'")
    for tag in references(text):
        if tag.startswith("="):
            try:
                parse_expression(tag[1:])
            except ExpressionError as exc:
                raise InvalidObject(path, f"{{{{{tag}}}}} does not parse: {exc}") from None
            continue
        why = problem(tag, scope)
        if why is not None:
            raise InvalidObject(path, why)


def _lenient(section: dict[str, Any] | None) -> dict[str, Any] | None:
    """`outputs` or `arguments` without what podline resolves even when it names nothing (kept in place, so that
    paths keep their indices): an output parameter with valueFrom.default takes it; an optional artifact is left
    out, as Argo leaves it."""
    if section is None:
        return None
    params = [None if (p.get("valueFrom") or {}).get("default") is not None else p
              for p in section.get("parameters") or []]
    artifacts = [None if a.get("optional") else a for a in section.get("artifacts") or []]
    return {**section, "parameters": params, "artifacts": artifacts}


def _check_fields(value: dict[str, Any], where: str, scope: Scope, skip: frozenset[str] = frozenset()) -> None:
    for key, sub in value.items():
        if key in ("outputs", "arguments"):
            sub = _lenient(sub)
        if key not in skip:
            for path, text in _walk(sub, f"{where}.{key}", key):
                _check_text(text, path, scope)


def _fragment_possible(replaced: str) -> bool:
    """May a stand-in, outside quotes, be beside another operand, i.e. stand for a piece of the expression?"""
    masked = _QUOTED.sub(lambda m: "'" + "_" * (len(m.group(0)) - 2) + "'", replaced)
    for match in re.finditer(STAND_IN, masked):
        before, after = masked[:match.start()].rstrip()[-1:], masked[match.end():].lstrip()[:1]
        if (before and before not in _OPERAND_EDGE) or (after and after not in _OPERAND_EDGE):
            return True
    return False


def check_when(when: str, path: str) -> None:
    """A `when` parses once each `{{…}}` is a plain word (unless one may stand for a piece of the expression)."""
    replaced = _REFERENCE.sub(f" {STAND_IN} ", when)
    try:
        check_when_syntax(replaced)
    except ExpressionError as exc:
        if not _fragment_possible(replaced):
            raise InvalidObject(path, f"{quoted(when)} does not parse: {str(exc).split(' in expression ')[0]}") \
                from None


def check_retry_expression(strategy: dict[str, Any] | None, where: str) -> None:
    expression = (strategy or {}).get("expression")
    if expression is not None and "{{" not in expression:
        try:
            parse_expression(expression)
        except ExpressionError as exc:
            raise InvalidObject(f"{where}.expression", f"does not parse: {exc}") from None


class _Checker:
    def __init__(self, spec: WorkflowSpec, parameters: frozenset[str] | None) -> None:
        self.templates = {t.name: t for t in spec.templates or []}
        self.defaults = spec.template_defaults
        self.parameters = parameters

    def called(self, call: Any) -> Called | None:
        target = call.inline if call.inline is not None else self.templates.get(call.template or "")
        return None if call.template_ref is not None else _called(target, self.defaults)

    def template(self, template: Template, where: str, name: str) -> None:
        ins = [i for i in (template.inputs, self.defaults.inputs if self.defaults else None) if i is not None]
        scope = Scope(name, template.type, frozenset(p.name for i in ins for p in i.parameters or []),
                      frozenset(a.name for i in ins for a in i.artifacts or []), self.parameters)
        dumped = template.dump()
        check_retry_expression(dumped.get("retryStrategy"), f"{where}.retryStrategy")
        if template.steps is not None:
            groups = [[(k, step) for k, step in enumerate(group)] for group in template.steps]
            scope = replace(scope, steps={s.name: self.called(s) for group in groups for _, s in group})
            for g, group in enumerate(groups):
                earlier = {s.name: self.called(s) for group in groups[:g] for _, s in group}
                hidden = {s.name: f"runs in a later group (steps[{h}]): only steps of earlier groups may be named"
                          for h, later in enumerate(groups) if h > g for _, s in later}
                hidden.update({s.name: "is in the same group: only steps of earlier groups may be named"
                               for _, s in group})
                for k, step in group:
                    self.call(step, f"{where}.steps[{g}][{k}]", "step", replace(scope, steps=earlier, hidden=hidden))
            _check_fields(dumped, where, scope, frozenset({"steps"}))
        elif template.dag is not None:
            tasks = template.dag.tasks
            deps = {t.name: parse_depends(t.depends) if t.depends is not None else list(t.dependencies or [])
                    for t in tasks}
            scope = replace(scope, steps={t.name: self.called(t) for t in tasks},
                            hooked=frozenset(t.name for t in tasks if t.hooks))
            for i, task in enumerate(tasks):
                ancestors: set[str] = set()
                todo = list(deps[task.name])
                while todo:
                    dep = todo.pop()
                    if dep not in ancestors:
                        ancestors.add(dep)
                        todo.extend(deps.get(dep, []))
                here = f"{where}.dag.tasks[{i}]"
                self.call(task, here, "task", replace(scope, ancestors=frozenset(ancestors)))
                self.task_arguments(task, here, ancestors)
            _check_fields({k: v for k, v in dumped.items() if k != "dag"}, where, scope)
            _check_fields(dumped["dag"], f"{where}.dag", scope, frozenset({"tasks"}))
        else:
            _check_fields(dumped, where, scope)

    def call(self, call: Any, where: str, kind: str, scope: Scope) -> None:
        """A step's or task's own fields (not its hooks, which see its outputs), and its inline template."""
        loops = any(x is not None for x in (call.with_items, call.with_param, call.with_sequence))
        scope = replace(scope, loop=None if loops else f"{kind} {call.name!r}")
        _check_fields(call.dump(), where, scope, frozenset({"hooks", "inline"}))
        if call.when is not None:
            check_when(call.when, f"{where}.when")
        if call.with_param is not None and "{{" not in call.with_param:
            try:
                parse_items(call.with_param)
            except ExpressionError as exc:
                raise InvalidObject(f"{where}.withParam", str(exc)) from None
        fmt = call.with_sequence.format if call.with_sequence is not None else None
        if fmt is not None and "{{" not in fmt:
            try:
                expand_sequence({"count": 1, "format": fmt})
            except (ExpressionError, TypeError, ValueError) as exc:
                raise InvalidObject(f"{where}.withSequence.format", str(exc)) from None
        if call.inline is not None:
            self.template(call.inline, f"{where}.inline", f"the inline template of {kind} {call.name!r}")

    @staticmethod
    def task_arguments(task: Any, where: str, ancestors: set[str]) -> None:
        """Argo's rule: an argument that is `{{tasks.X.…}}` needs X among the tasks this one depends on (else it
        resolves only if X happens to have finished first)."""
        args = task.arguments
        given = [(f"parameters[{j}].value", p.name, "parameter", p.value) for j, p in
                 enumerate(args.parameters or [] if args else [])]
        given += [(f"artifacts[{j}].from", a.name, "artifact", a.from_) for j, a in
                  enumerate(args.artifacts or [] if args else []) if not a.optional]  # left out if not there
        for path, name, what, value in given:
            if isinstance(value, str) and value.startswith("{{tasks."):
                needed = value.split(".")[1]
                if needed not in ancestors:
                    raise InvalidObject(f"{where}.arguments.{path}", f"missing dependency {needed!r} for {what} "
                                        f"{name!r}: add it to depends or dependencies")


def check_placeholders(spec: WorkflowSpec, library: bool) -> None:
    """Each template's placeholders, `when`s, expressions and loops (see the module docstring); `library`: a
    WorkflowTemplate's spec, whose `workflow.parameters` may come from the workflow made from it."""
    given = spec.arguments.parameters if spec.arguments and spec.arguments.parameters else []
    parameters = None if library else frozenset(p.name for p in given)
    checker = _Checker(spec, parameters)
    check_retry_expression(spec.retry_strategy.dump() if spec.retry_strategy else None, "spec.retryStrategy")
    defaults = spec.template_defaults
    check_retry_expression(defaults.retry_strategy.dump() if defaults and defaults.retry_strategy else None,
                           "spec.templateDefaults.retryStrategy")
    for i, template in enumerate(spec.templates or []):
        checker.template(template, f"spec.templates[{i}]", f"template {template.name!r}")
