"""Cross-reference rules of a Workflow, each raising `InvalidObject` with the exact field path.

What Argo's own validation refuses at submit time is refused here before anything is stored: unknown
template names, duplicate names, DAG dependencies on unknown tasks or in a cycle, `depends` expressions
that do not parse, inputs a caller does not supply, output parameters and artifacts whose source does not
fit the template type; `{{…}}` placeholders that name nothing in their scope (`api.workflow_refs`). Recursion
(a steps template calling itself, guarded by `when`) is allowed, as in Argo.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from podline.api.checks import MISSING_IMAGE, _check_resources, check_name_length, check_slurm_flags
from podline.api.errors import InvalidObject
from podline.api.pilot import PILOT, PILOT_ID, PILOT_SIZE, parse_pilot
from podline.api.template_refs import (
    Lookup,
    Unresolved,
    calls,
    effective_spec,
    kind_word,
    scope_of,
    stored_templates,
    with_defaults,
)
from podline.api.workflow import (
    DAGTask,
    LifecycleHook,
    Synchronization,
    Template,
    TemplateDefaults,
    Workflow,
    WorkflowSpec,
    WorkflowStep,
    WorkflowTemplate,
)
from podline.api.workflow_dag import cycle, parse_depends
from podline.api.workflow_io_checks import check_arguments, check_io, check_supplied, unique
from podline.api.workflow_refs import check_placeholders
from podline.api.workflow_values import Arguments

MAX_NAME = 63  # pod names and labels derive from the workflow's name, as in Argo


def _check_call(call: WorkflowStep, where: str, templates: dict[str, Template]) -> None:
    """A step's or task's call; one through templateRef is checked against the referenced template at apply
    (`check_references`), when the stored WorkflowTemplates can be read."""
    given = sum(x is not None for x in (call.template, call.template_ref, call.inline))
    if given != 1:
        problem = "give one of template, templateRef and inline" if given else "required field is missing"
        raise InvalidObject(f"{where}.template", problem)
    if call.inline is not None:
        _check_template(call.inline, f"{where}.inline", templates, None)
        check_supplied(call.inline.inputs, call.arguments, call.name, f"{where}.arguments")
    target = templates.get(call.template) if call.template is not None else None
    if call.template is not None and target is None:
        raise InvalidObject(f"{where}.template", f"no template named {call.template!r} in spec.templates")
    loops = [field for field, value in (("withItems", call.with_items), ("withParam", call.with_param),
                                        ("withSequence", call.with_sequence)) if value is not None]
    if len(loops) > 1:
        raise InvalidObject(f"{where}.{loops[1]}", "only one of withItems, withParam, withSequence may be given")
    check_arguments(call.arguments, f"{where}.arguments")
    if target is not None:
        check_supplied(target.inputs, call.arguments, call.template, f"{where}.arguments")
    _check_exit(call.on_exit, call.hooks, where, templates)


def _check_exit(on_exit: str | None, hooks: dict[str, LifecycleHook] | None, where: str,
                templates: dict[str, Template]) -> None:
    """`onExit` or `hooks.exit` (not both) names a template."""
    hook = (hooks or {}).get("exit")
    if on_exit is not None and hook is not None:
        raise InvalidObject(f"{where}.hooks.exit", "give onExit or hooks.exit, not both")
    for path, name in ((f"{where}.onExit", on_exit), (f"{where}.hooks.exit.template", hook and hook.template)):
        if name is not None and name not in templates:
            raise InvalidObject(path, f"no template named {name!r} in spec.templates")
    if hook is not None:
        check_arguments(hook.arguments, f"{where}.hooks.exit.arguments")
    for key, other in (hooks or {}).items():
        if key != "exit":
            if other.template not in templates:
                raise InvalidObject(f"{where}.hooks[{key}].template", f"no template named {other.template!r} in "
                                                                       "spec.templates")
            check_arguments(other.arguments, f"{where}.hooks[{key}].arguments")


def _check_dag(tasks: list[DAGTask], where: str, templates: dict[str, Template], target: str | None = None) -> None:
    unique((t.name for t in tasks), f"{where}.tasks[{{}}].name", "task")
    for name in (target or "").split() if "{{" not in (target or "") else []:
        if name not in {t.name for t in tasks}:
            raise InvalidObject(f"{where}.target", f"no task named {name!r} in this DAG")
    for i, task in enumerate(tasks):
        if task.name == "onExit":  # its node would be named as the exit handler's (`<workflow>.onExit`)
            raise InvalidObject(f"{where}.tasks[{i}].name", "'onExit' is reserved for the exit handler")
    names = {t.name for t in tasks}
    uses_depends = next((i for i, t in enumerate(tasks) if t.depends is not None), None)
    uses_dependencies = next((i for i, t in enumerate(tasks) if t.dependencies is not None), None)
    if uses_depends is not None and uses_dependencies is not None:
        i, field = max((uses_depends, "depends"), (uses_dependencies, "dependencies"))
        raise InvalidObject(f"{where}.tasks[{i}].{field}",
                            "cannot use both depends and dependencies in the same DAG template")
    edges: dict[str, list[str]] = {}
    for i, task in enumerate(tasks):
        here = f"{where}.tasks[{i}]"
        _check_call(task, here, templates)
        if task.depends is not None:
            try:
                deps = parse_depends(task.depends)
            except ValueError as exc:
                raise InvalidObject(f"{here}.depends", str(exc)) from None
            field = f"{here}.depends"
        else:
            deps, field = task.dependencies or [], f"{here}.dependencies"
        for j, dep in enumerate(deps):
            path = field if task.depends is not None else f"{field}[{j}]"
            if dep == task.name:
                raise InvalidObject(path, "a task cannot depend on itself")
            if dep not in names:
                raise InvalidObject(path, f"unknown task {dep!r} in this dag")
        if deps and task.name[0].isdigit():
            raise InvalidObject(f"{here}.name", f"task name {task.name!r} cannot begin with a digit when it has "
                                "depends or dependencies")
        edges[task.name] = deps
    loop = cycle(edges)
    if loop:
        i = next(i for i, t in enumerate(tasks) if t.name == loop[0])
        field = "depends" if tasks[i].depends is not None else "dependencies"
        raise InvalidObject(f"{where}.tasks[{i}].{field}", f"dependencies form a cycle: {' -> '.join(loop)}")


def _check_memoize(template: Template, where: str) -> None:
    if template.memoize is None:
        return
    if template.type not in ("container", "script"):
        raise InvalidObject(f"{where}.memoize", f"podline memoizes container and script templates, not a "
                                                f"{template.type} template")
    if template.outputs is not None and template.outputs.artifacts:
        raise InvalidObject(f"{where}.memoize", "a template with output artifacts is not memoized (they live "
                                                "with the workflow that made them)")


def _check_defaults(spec: WorkflowSpec) -> None:
    """Each template as it runs under spec.templateDefaults passes the template rules that defaults can break."""
    if spec.template_defaults is None:
        return
    own = spec.template_defaults.metadata
    if own and own.annotations:  # they reach every template's pod, as the template's own would
        check_slurm_flags(own.annotations, "spec.templateDefaults.metadata")
    defaults = spec.template_defaults.dump()
    for i, template in enumerate(spec.templates or []):
        where = f"spec.templates[{i}]"
        try:
            merged = Template.model_validate(with_defaults(template.dump(), defaults, None))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidObject(where, f"with spec.templateDefaults: {'.'.join(map(str, first['loc']))}: "
                                       f"{first['msg']}") from None
        try:
            _check_memoize(merged, where)
        except InvalidObject as exc:
            raise InvalidObject(exc.path, f"with spec.templateDefaults: {exc.problem}") from None


def _check_template(template: Template, where: str, templates: dict[str, Template], volumes: set[str] | None) -> None:
    """`volumes`: the names a container may mount besides the template's own; None for a WorkflowTemplate, whose
    templates may mount the calling workflow's volumes (a step pod naming none is refused when it is made)."""
    check_io(template, where)
    unique((v.name for v in template.volumes or []), f"{where}.volumes[{{}}].name", "volume")
    known = (volumes or set()) | {v.name for v in template.volumes or []}
    if template.metadata and template.metadata.annotations:
        check_slurm_flags(template.metadata.annotations, f"{where}.metadata")
    _check_memoize(template, where)
    if template.suspend is not None and template.suspend.duration is None:
        raise InvalidObject(f"{where}.suspend.duration", "required: podline has no `argo resume`, so a suspend "
                                                         "template needs a duration")
    container = template.container or template.script
    if container is not None:
        here = f"{where}.{template.type}"
        _check_resources(container, here)
        for j, mount in enumerate(container.volume_mounts):
            if volumes is not None and mount.name not in known:
                raise InvalidObject(f"{here}.volumeMounts[{j}].name",
                                    f"volume {mount.name!r} is not declared in spec.volumes or {where}.volumes")
    if template.steps is not None:
        flat = [(f"{where}.steps[{g}][{k}]", step) for g, group in enumerate(template.steps)
                for k, step in enumerate(group)]
        seen: set[str] = set()
        for here, step in flat:
            if step.name in seen:
                raise InvalidObject(f"{here}.name", f"duplicate step name {step.name!r} in this template")
            seen.add(step.name)
            _check_call(step, here, templates)
    if template.dag is not None:
        _check_dag(template.dag.tasks, f"{where}.dag", templates, template.dag.target)


def _check_pilot(wf: Workflow | WorkflowTemplate) -> None:
    annotations = wf.metadata.annotations or {}
    for key in (PILOT_ID, PILOT_SIZE):
        if key in annotations:
            raise InvalidObject(f"metadata.annotations[{key}]", f"set by podline on step pods; use {PILOT}")
    if PILOT not in annotations:
        return
    if isinstance(wf, WorkflowTemplate):
        raise InvalidObject(f"metadata.annotations[{PILOT}]", "only a Workflow runs in a pilot allocation")
    try:
        parse_pilot(annotations[PILOT])
    except ValueError as exc:
        raise InvalidObject(f"metadata.annotations[{PILOT}]", str(exc)) from None


def check_workflow(wf: Workflow | WorkflowTemplate) -> None:
    """A Workflow's rules, or a (Cluster)WorkflowTemplate's: the same spec, where a template library may lack an
    entrypoint and a Workflow made from a workflowTemplateRef brings no templates of its own."""
    check_name_length(wf.metadata, MAX_NAME, wf.kind)
    _check_pilot(wf)
    spec = wf.spec
    if isinstance(wf, WorkflowTemplate):
        if spec.workflow_template_ref is not None:
            raise InvalidObject("spec.workflowTemplateRef", f"not allowed in a {wf.kind}")
        if not spec.templates:
            raise InvalidObject("spec.templates", "required field is missing")
    elif spec.workflow_template_ref is not None:
        if spec.templates:
            raise InvalidObject("spec.templates", "not allowed with workflowTemplateRef (the templates are the "
                                                  "WorkflowTemplate's)")
        check_arguments(spec.arguments, "spec.arguments")  # the rest is checked on the merged spec at apply
        return
    else:
        for field in ("entrypoint", "templates"):
            if not getattr(spec, field):
                raise InvalidObject(f"spec.{field}", "required field is missing")
    check_spec(spec, library=isinstance(wf, WorkflowTemplate))


def check_spec(spec: WorkflowSpec, library: bool = False) -> None:
    """The spec's cross-references; `library`: a WorkflowTemplate's (its templates' volume mounts may name the
    calling workflow's volumes)."""
    templates_list = spec.templates or []
    if spec.pod_metadata and spec.pod_metadata.annotations:
        check_slurm_flags(spec.pod_metadata.annotations, "spec.podMetadata")
    unique((v.name for v in spec.volumes or []), "spec.volumes[{}].name", "volume")
    unique((t.name for t in templates_list), "spec.templates[{}].name", "template")
    templates = {t.name: t for t in templates_list}
    check_arguments(spec.arguments, "spec.arguments", values=not library)
    _check_exit(spec.on_exit, spec.hooks, "spec", templates)
    for field, name in (("entrypoint", spec.entrypoint), ("onExit", spec.on_exit)):
        if name is None:
            continue
        if name not in templates:
            raise InvalidObject(f"spec.{field}", f"no template named {name!r} in spec.templates")
        if not library:  # a library's entrypoint gets its inputs from the workflow made from it (Argo: fake args)
            check_supplied(templates[name].inputs, spec.arguments, name, f"spec.{field}")
    claims = [t.metadata.name for t in spec.volume_claim_templates or []]
    unique(claims, "spec.volumeClaimTemplates[{}].metadata.name", "claim")
    volumes = {v.name for v in spec.volumes or []}
    clash = volumes & set(claims)
    if clash:
        raise InvalidObject("spec.volumeClaimTemplates", f"{sorted(clash)[0]!r} is also in spec.volumes")
    volumes |= set(claims)
    for i, template in enumerate(templates_list):
        _check_template(template, f"spec.templates[{i}]", templates, None if library else volumes)
    _check_defaults(spec)
    for i, template in enumerate(templates_list):
        _check_runnable(template, f"spec.templates[{i}]", spec.template_defaults)
    _check_own_mutexes(spec)
    check_placeholders(spec, library)


def _check_runnable(template: Template, where: str, defaults: TemplateDefaults | None) -> None:
    """A container template (or an inline one in its steps or tasks) with neither an image nor a command or args,
    of its own or from spec.templateDefaults, could never start (as a Pod's container: `api.checks`)."""
    container, fallback = template.container, defaults.container if defaults else None
    if container is not None and not any((container.image, container.command, container.args)) and \
            not (fallback and any((fallback.image, fallback.command, fallback.args))):
        raise InvalidObject(f"{where}.container.image", MISSING_IMAGE)
    calls = [(f"{where}.steps[{g}][{k}]", step) for g, group in enumerate(template.steps or [])
             for k, step in enumerate(group)]
    calls += [(f"{where}.dag.tasks[{k}]", task) for k, task in enumerate(template.dag.tasks if template.dag else [])]
    for here, call in calls:
        if call.inline is not None:
            _check_runnable(call.inline, f"{here}.inline", defaults)


def _mutex_names(sync: Synchronization | None) -> set[str]:
    if sync is None:
        return set()
    return {m.name for m in ([sync.mutex] if sync.mutex else []) + (sync.mutexes or []) if m.namespace is None}


def _check_own_mutexes(spec: WorkflowSpec) -> None:
    """A template (or templateDefaults) taking a mutex the workflow itself holds would wait for its own workflow
    forever."""
    mine = _mutex_names(spec.synchronization)
    holders = [(f"spec.templates[{i}].synchronization", t.synchronization) for i, t in enumerate(spec.templates or [])]
    if spec.template_defaults is not None:
        holders.append(("spec.templateDefaults.synchronization", spec.template_defaults.synchronization))
    for where, sync in holders:
        both = mine & _mutex_names(sync)
        if both:
            raise InvalidObject(where, f"mutex {sorted(both)[0]!r} is also the workflow's own: the template would "
                                       "wait for its own workflow forever")


def check_references(wf: Workflow | WorkflowTemplate, lookup: Lookup) -> None:
    """At apply, with the stored (and just applied) WorkflowTemplates: every templateRef names a template that
    exists and is given the inputs it needs; a workflowTemplateRef names a template object whose spec, merged
    with the workflow's own fields, passes the rules of a whole Workflow (as `argo submit` lints them)."""
    own = wf.dump()["spec"]
    try:
        spec = effective_spec(own, lookup)
        stored = stored_templates(spec, lookup)
    except Unresolved as exc:
        raise InvalidObject(exc.path, exc.problem) from None
    if spec is not own:
        check_merged(own, spec)
        return  # the template object's own calls were checked when it was applied
    for path, call in calls(own.get("templates") or []):
        ref = call.get("templateRef")
        if ref is not None:
            target = Template.model_validate(stored[f"{scope_of(ref)}/{ref['template']}"])
            arguments = Arguments.model_validate(call["arguments"]) if "arguments" in call else None
            check_supplied(target.inputs, arguments, ref["template"], f"spec.templates{path}.arguments")


def check_merged(own: dict[str, Any], merged: dict[str, Any]) -> None:
    """A Workflow made from a workflowTemplateRef: the merged spec passes a whole Workflow's rules (at apply, and
    again at the first pass, when the template object may have changed)."""
    ref = own["workflowTemplateRef"]
    try:
        check_spec(WorkflowSpec.model_validate(merged))
    except (InvalidObject, ValidationError) as exc:
        if isinstance(exc, InvalidObject):
            problem = f"{exc.path}: {exc.problem}"
        else:
            problem = f"{'.'.join(map(str, exc.errors()[0]['loc']))}: {exc.errors()[0]['msg']}"
        raise InvalidObject("spec.workflowTemplateRef", f"with {kind_word(bool(ref.get('clusterScope')))} "
                            f"{ref['name']!r}: {problem}") from None
