"""`apply`: manifests become desired state — loaded, checked against what is stored (immutable fields, a
pipeline's reslicing), named (generateName) and written in one transaction; the controller does the rest."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from podline.api.errors import ManifestError
from podline.api.names import generated_name
from podline.cli.common import State, fail, namespace_option, pass_state, recursive_option
from podline.store import Obj, Store

if TYPE_CHECKING:
    from podline.api.base import Resource
    from podline.api.loader import Loaded

# podline.api.loader builds the pydantic models (about 0.1 s): imported by the commands that read manifests,
# so that `get`, `describe`, `logs` and `wait` start without it.

# Fields of a stored object that may change on re-apply (the rest are immutable, as in Kubernetes).
MUTABLE_SPEC = {"Job": {"parallelism", "suspend", "ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit",
                        "maxFailedIndexes"}}


STEP_SHAPE = ("name", "dependsOn", "checkpoint")


def _pipeline_change_problem(old_spec: dict, new_spec: dict, phase: str | None) -> str | None:
    """A running pipeline takes new step images/commands/env/resources, more shards, a new backoffLimit or
    deadline; its step graph, workspace, checkpoint policy and data paths stay as they started. A finished one
    (`phase`) runs no step again: only more shards reach it (as a finished Job's template is immutable)."""
    old_spec, new_spec = _same_graph_order(old_spec), _same_graph_order(new_spec)  # a reordered dependsOn: no change
    changed = sorted(k for k in set(old_spec) | set(new_spec) if old_spec.get(k) != new_spec.get(k))
    fixed = [k for k in changed if k not in ("steps", "shards", "backoffLimit", "activeDeadlineSeconds")]
    if fixed:
        return f"spec.{fixed[0]}: field is immutable ({', '.join(fixed)} cannot change); delete the pipeline first"
    late = [k for k in changed if k != "shards"]
    if late and phase in ("Succeeded", "Failed"):
        return f"spec.{late[0]}: the pipeline has finished ({phase}) and runs no step again; delete it and apply it " \
               "again (more shards do run)"
    old_steps, new_steps = old_spec["steps"], new_spec["steps"]
    if len(old_steps) != len(new_steps):
        return "spec.steps: steps cannot be added or removed; delete the pipeline first"
    for i, (old, new) in enumerate(zip(old_steps, new_steps, strict=True)):
        for key in STEP_SHAPE:
            if old.get(key) != new.get(key):
                return f"spec.steps[{i}].{key}: the step graph cannot change (was {old.get(key)!r}); delete the " \
                       "pipeline first"
    if new_spec.get("shards", 1) < old_spec.get("shards", 1):
        return "spec.shards: a pipeline can gain shards, not lose them"
    return None


def _same_graph_order(spec: dict) -> dict:
    steps = [{**step, "dependsOn": sorted(step.get("dependsOn") or [])} for step in spec.get("steps", [])]
    return {**spec, "steps": steps}


def _reslicing_problem(store: Store, current: Obj, new_spec: dict) -> str | None:
    """More shards for a pipeline whose shards have started and whose inputs are sliced by shard would give the
    new shards slices of a different split, overlapping the old ones (SPEC: disjoint, stable slices). And one
    shard's outputs go to each destination itself, several shards' to destination/<shard>: a single shard that
    has started may already have published there, so its outputs would not be where its siblings' are."""
    old_spec = current.manifest["spec"]
    started = any(shard.get("attempts", 0) for shard in current.status.get("shards", []))
    if new_spec.get("shards", 1) == old_spec.get("shards", 1) or not started:
        return None
    if old_spec.get("shards", 1) == 1 and old_spec.get("outputs"):
        return ("shards: its one shard has started and publishes its outputs to each destination itself; with more "
                "shards they go to destination/<shard> (delete and re-apply with the shards wanted)")
    for i, item in enumerate(old_spec.get("inputs", [])):
        if not item.get("dataset"):  # a `source` input: every shard gets all of it
            continue
        dataset = store.get("Dataset", current.namespace, item["dataset"])
        shard_by = (dataset.manifest["spec"].get("shardBy", "files") if dataset else "files")
        if shard_by == "files":
            return (f"shards: its shards have started with inputs[{i}] sliced {old_spec.get('shards', 1)} ways; "
                    "more shards would overlap their slices (delete and re-apply to re-slice)")
    return None


def _immutable_problem(current: Obj, new: dict, store: Store) -> str | None:
    """Why re-applying `new` over `current` is refused ("field path: problem"), if it is."""
    if current.kind == "Pipeline":
        reslicing = _reslicing_problem(store, current, new["spec"])
        return _pipeline_change_problem(current.manifest["spec"], new["spec"], current.status.get("phase")) or \
            (reslicing and f"spec.{reslicing}")
    if current.kind in ("ConfigMap", "Secret"):
        return "data: field is immutable when `immutable` is set" if current.manifest.get("immutable") and \
            current.manifest != new else None
    if current.kind not in ("Pod", "Job", "Workflow"):  # a Workflow's spec is fixed once it runs, as in Argo
        return None
    old_spec, new_spec = current.manifest.get("spec", {}), new.get("spec", {})
    allowed = MUTABLE_SPEC.get(current.kind, set())
    changed = sorted({k for k in set(old_spec) | set(new_spec) if old_spec.get(k) != new_spec.get(k)} - allowed)
    if changed:
        others = f" (so are {', '.join(changed[1:])})" if changed[1:] else ""
        return f"spec.{changed[0]}: field is immutable{others}; delete the object first"
    return None


def load_or_exit(files: tuple[str, ...], state: State) -> list[Loaded]:
    """The objects in the -f inputs (exit 2 for any bad one), in the namespace a -n gave (see
    `api.loader.build_object`), directories with their subdirectories with -R."""
    from podline.api.loader import load_paths

    try:
        loaded = load_paths(list(files), state.manifest_namespace, state.recursive)
    except ManifestError as exc:
        fail(str(exc), 2)
    for item in loaded:
        for warning in item.warnings:
            click.echo(f"warning: {item.describe()}: {warning}", err=True)
    return loaded


def _generate_name(store: Store, obj: Resource, taken: set[tuple[str, str, str]]) -> None:
    """Name an object that has only a generateName, like `kubectl create`: each apply makes a new object.
    Called inside the write transaction, so a name found free stays free until it is taken; `taken` holds
    the names of this apply's other objects."""
    meta = obj.metadata
    assert meta.generate_name is not None
    while True:
        name = generated_name(meta.generate_name)
        if (obj.kind, meta.namespace, name) not in taken and store.get(obj.kind, meta.namespace, name) is None:
            meta.name = name
            taken.add((obj.kind, meta.namespace, name))
            return


def _check_template_references(store: Store, loaded: list[Loaded]) -> None:
    """Workflows and WorkflowTemplates name only templates that exist: stored, or applied together."""
    argo_kinds = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate")
    if not any(item.obj.kind in argo_kinds for item in loaded):
        return  # without the imports below: the workflow controller's modules are a fifth of a Pod's apply
    from podline.api.errors import InvalidObject
    from podline.api.workflow_checks import check_references
    from podline.controller.workflow_start import template_lookup

    applied = {(item.obj.kind, item.obj.metadata.namespace, item.obj.metadata.name): item.obj.dump()["spec"]
               for item in loaded if item.obj.kind in ("WorkflowTemplate", "ClusterWorkflowTemplate")}
    for item in loaded:
        if item.obj.kind not in argo_kinds:
            continue
        current = store.get(item.obj.kind, item.obj.metadata.namespace, item.obj.metadata.name or "")
        if current is not None and current.manifest == item.obj.dump():
            continue  # unchanged: checked when it was applied (a running workflow keeps its stored templates)
        try:
            check_references(item.obj, template_lookup(store, item.obj.metadata.namespace, applied))
        except InvalidObject as exc:
            fail(f"{item.describe()}: {exc.path}: {exc.problem}", 2)


def apply_objects(state: State, loaded: list[Loaded], said: str | None = None) -> None:
    """Validate every change against stored state first, then write all in one transaction; `said`: the word
    printed for a change (kubectl's `scaled`), else what happened (created, configured, unchanged)."""
    context = state.check_context()
    store = state.store
    plans = []
    elsewhere = []  # stored objects of another context: they keep it (a kubectl user may expect another cluster)
    for item in loaded:
        obj = item.obj
        if obj.metadata.name is None:  # a generateName: always a new object, named when it is written
            plans.append((obj, None))
            continue
        manifest = obj.dump()
        current = store.get(obj.kind, obj.metadata.namespace, obj.metadata.name or "")
        if current is not None:
            if current.deleted_at:
                fail(f"{item.describe()}: object is being deleted; wait for it to disappear", 1)
            problem = _immutable_problem(current, manifest, store)
            if problem:
                fail(f"{item.describe()}: {problem}", 2)
            if current.context != context:
                elsewhere.append(f'warning: {obj.kind.lower()}/{current.name} stays in context "{current.context}", '
                                 f'where it was created (delete it to run it in "{context}")')
        plans.append((obj, manifest))
    _check_template_references(store, loaded)
    results = []
    taken = {(obj.kind, obj.metadata.namespace, obj.metadata.name or "") for obj, _ in plans}
    with store.tx():
        for obj, manifest in plans:
            if manifest is None:
                _generate_name(store, obj, taken)
                manifest = obj.dump()
            result, _ = store.apply(obj.kind, obj.metadata.namespace, obj.metadata.name or "", manifest,
                                    context=context)
            word = said if said and result != "unchanged" else result
            results.append(f"{obj.kind.lower()}/{obj.metadata.name} {word}")
    if any(not r.endswith("unchanged") for r in results):
        state.ensure_controller()
    for line in results:
        click.echo(line)
    for line in elsewhere:
        click.echo(line, err=True)


@click.command()
@namespace_option
@recursive_option
@click.option("-f", "--filename", "files", multiple=True, required=True, help="File, directory or '-' for stdin.")
@pass_state
def apply(state: State, files: tuple[str, ...]) -> None:
    """Create or update objects from YAML manifests."""
    apply_objects(state, load_or_exit(files, state))
