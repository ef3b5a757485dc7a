"""Cross-field rules pydantic cannot express per field, each raising with the exact field path."""

from __future__ import annotations

import posixpath

from podline.api.base import GENERATED_SUFFIX, ObjectMeta, Resource, warnings_var
from podline.api.batch import MAX_NAME as MAX_JOB_NAME
from podline.api.batch import Job, index_intervals
from podline.api.core import RESOURCE_LIMITS, ConfigMap, Container, Pod, PodSpec, missing_image
from podline.api.dataset import Dataset, check_dataset
from podline.api.env import EnvVar
from podline.api.errors import InvalidObject
from podline.api.pilot import PILOT, PILOT_ID, PILOT_SIZE
from podline.api.pipeline import Pipeline, topological_order
from podline.api.quantity import EXTENDED_RESOURCES, parse_quantity
from podline.api.slurmflags import FLAG_ANNOTATIONS, MPI_ANNOTATION, FlagError, parse_flags
from podline.api.workflow import Workflow, WorkflowTemplate

# A container with neither an image nor a command or args: no runtime could ever start it.
MISSING_IMAGE = "required field is missing (a container without command or args needs an image)"


def _check_resources(container: Container, where: str, extended_needs_limit: bool = True) -> None:
    """Kubernetes' rules for a container's resources. An extended resource (a GPU) is never overcommitted: its
    request must equal its limit, and Kubernetes refuses a pod that requests one without a limit. A Pipeline
    step (podline's own kind) may leave the limit out: it is the request there, also in the rendered Job."""
    resources = container.resources
    for field in ("requests", "limits"):
        for key, raw in getattr(resources, field).items():
            amount = parse_quantity(raw)
            if amount > RESOURCE_LIMITS[key]:
                raise InvalidObject(f"{where}.resources.{field}[{key}]", f"{raw!r} is absurdly large")
            if key == "nvidia.com/gpu" and amount != amount.to_integral_value():
                raise InvalidObject(f"{where}.resources.{field}[{key}]", f"{raw!r}: GPUs come in whole numbers")
    for key, raw in resources.requests.items():
        limit = resources.limits.get(key)
        if key in EXTENDED_RESOURCES and limit is None and extended_needs_limit:
            raise InvalidObject(f"{where}.resources.limits[{key}]", f"required when requests[{key}] is set "
                                f"(equal to it): Kubernetes does not default an extended resource's limit")
        if key in EXTENDED_RESOURCES and limit is not None and parse_quantity(raw) != parse_quantity(limit):
            raise InvalidObject(f"{where}.resources.requests[{key}]", f"must be equal to limits[{key}] "
                                f"({raw!r} requested, {limit!r} limit): an extended resource is never overcommitted")
        if key in resources.limits and parse_quantity(raw) > parse_quantity(resources.limits[key]):
            raise InvalidObject(f"{where}.resources.requests[{key}]",
                                f"must be less than or equal to limits[{key}]")


def check_pod_spec(spec: PodSpec, base: str) -> None:
    volumes: set[str] = set()
    for i, volume in enumerate(spec.volumes):
        if volume.name in volumes:
            raise InvalidObject(f"{base}.volumes[{i}].name", f"duplicate volume name {volume.name!r}")
        volumes.add(volume.name)
    names: set[str] = set()
    for field, containers in (("initContainers", spec.init_containers), ("containers", spec.containers)):
        for i, container in enumerate(containers):
            where = f"{base}.{field}[{i}]"
            if container.name in names:
                raise InvalidObject(f"{where}.name", f"duplicate container name {container.name!r}")
            names.add(container.name)
            _check_resources(container, where)
            mount_paths: set[str] = set()
            for j, mount in enumerate(container.volume_mounts):
                if mount.name not in volumes:
                    raise InvalidObject(f"{where}.volumeMounts[{j}].name",
                                        f"volume {mount.name!r} is not declared in {base}.volumes")
                if mount.mount_path in mount_paths:
                    raise InvalidObject(f"{where}.volumeMounts[{j}].mountPath",
                                        f"duplicate mountPath {mount.mount_path!r}")
                mount_paths.add(mount.mount_path)


CHECKPOINT_ANNOTATIONS = ("podline.io/checkpoint-node-local-every", "podline.io/checkpoint-shared-every")


def check_annotations(annotations: dict[str, str], base: str, pilot: bool = False) -> None:
    """podline's own annotations: Slurm flags, and checkpoint intervals of a pod in pipeline form; `pilot` for a
    Workflow's own metadata, the one place `podline.io/pilot` belongs (check_workflow checks it)."""
    check_slurm_flags(annotations, base, pilot)
    for key in CHECKPOINT_ANNOTATIONS:
        value = annotations.get(key)
        if value is not None and not (value.isascii() and value.isdigit() and int(value) <= 1000):
            raise InvalidObject(f"{base}.annotations[{key}]", f"must be a whole number from 0 to 1000, got {value!r}")


def check_slurm_flags(annotations: dict[str, str], base: str, pilot: bool = False) -> None:
    """Slurm-facing annotations of a pod (or of what becomes one): flags parse, and no pilot keys, which only a
    Workflow's own metadata may carry (podline sets the step pods' ones)."""
    for key in () if pilot else (PILOT, PILOT_ID, PILOT_SIZE):
        if key in annotations:
            raise InvalidObject(f"{base}.annotations[{key}]", "only a Workflow runs in a pilot allocation: put "
                                f"{PILOT} on the Workflow's metadata")
    for key in FLAG_ANNOTATIONS:
        if key in annotations:
            try:
                parse_flags(annotations[key])
            except FlagError as exc:
                raise InvalidObject(f"{base}.annotations[{key}]", str(exc)) from None
    if MPI_ANNOTATION in annotations:  # interLink's mpiexec flags: no MPI launcher here yet, so never silently
        sink = warnings_var.get()
        if sink is not None:
            sink.append(f"{base}.annotations[{MPI_ANNOTATION}] is not supported by podline and is ignored: run "
                        "the MPI launcher (srun, mpiexec) in the container's command")


SHARD_VARIABLES = ("JOB_COMPLETION_INDEX", "PODLINE_SHARD", "PODLINE_SHARDS", "PODLINE_WORKSPACE")


def _warn_of_set_variables(env: list[EnvVar], where: str) -> None:
    """A step's own value for a variable podline sets replaces it (as a later entry does in Kubernetes, and so in
    the rendered Job): allowed, but never silently."""
    sink = warnings_var.get()
    for i, var in enumerate(env):
        if var.name in SHARD_VARIABLES and sink is not None:
            sink.append(f"{where}.env[{i}]: {var.name} is set by podline for each shard; this value replaces it")


def check_name_length(meta: ObjectMeta, limit: int, kind: str, why: str = "") -> None:
    """A kind whose name also names labels or jobs: the name, or generateName and the suffix apply adds."""
    if meta.name is not None and len(meta.name) > limit:
        raise InvalidObject("metadata.name", f"a {kind} name must be at most {limit} characters"
                            + (f" ({why}), got {len(meta.name)}" if why else ""))
    if meta.name is None and len(meta.generate_name or "") > limit - GENERATED_SUFFIX:
        raise InvalidObject("metadata.generateName", f"a {kind} generateName must be at most "
                            f"{limit - GENERATED_SUFFIX} characters ({GENERATED_SUFFIX} are added)")


def check_pipeline(obj: Pipeline) -> None:
    check_name_length(obj.metadata, 63, "Pipeline")  # it names the Job and labels of its Kubernetes form, and arrays
    steps = obj.spec.steps
    names: set[str] = set()
    for i, step in enumerate(steps):
        where = f"spec.steps[{i}]"
        if step.name in names:
            raise InvalidObject(f"{where}.name", f"duplicate step name {step.name!r}")
        names.add(step.name)
        _check_resources(step, where, extended_needs_limit=False)
        if not step.image and not step.command and not step.args:  # as a Pod's container (check_object)
            raise InvalidObject(f"{where}.image", MISSING_IMAGE)
        if step.volume_mounts:
            raise InvalidObject(f"{where}.volumeMounts", "not supported in a Pipeline step (steps share the workspace)")
        _warn_of_set_variables(step.env, where)
    for i, step in enumerate(steps):
        for j, dep in enumerate(step.depends_on):
            if dep not in names or dep == step.name or dep in step.depends_on[:j]:
                problem = "a step cannot depend on itself" if dep == step.name else f"unknown step {dep!r}" \
                    if dep not in names else f"step {dep!r} is named twice"
                raise InvalidObject(f"spec.steps[{i}].dependsOn[{j}]", problem)
    try:
        topological_order(steps)
    except ValueError as exc:
        raise InvalidObject("spec.steps", str(exc)) from None
    _check_pipeline_paths(obj)
    for i, item in enumerate(obj.spec.inputs):
        if (item.dataset is None) == (item.source is None):
            raise InvalidObject(f"spec.inputs[{i}]", "exactly one of source and dataset is required")


def _normal(path: str) -> str:
    """A path as the filesystem resolves it (`in/`, `./in` and `in` are one place; `//x` is `/x`)."""
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/") if normal.startswith("/") else normal


def _parents(path: str) -> list[str]:
    """The directories above a normalised path (`a/b/c` → `a/b`, `a`; `/x/y` → `/x`)."""
    out: list[str] = []
    while True:
        parent = posixpath.dirname(path)
        if parent in ("", "/", path):
            return out
        out.append(parent)
        path = parent


def _check_pipeline_paths(obj: Pipeline) -> None:
    """Paths that are one place however they are spelt: an input staged into (or over) another one's path, an
    output path given twice, an output destination in (or equal to) another's would each silently overwrite
    data. Reported at the later entry; linear in the entries (each is compared through its parent directories)."""
    checks = (("inputs", "path", [i.path for i in obj.spec.inputs], True),
              ("outputs", "path", [o.path for o in obj.spec.outputs], False),
              ("outputs", "destination", [o.destination for o in obj.spec.outputs], True))
    for field, attr, paths, nested in checks:
        seen: dict[str, str] = {}  # normalised path -> as written
        below: dict[str, str] = {}  # a directory above a seen path -> that path as written
        for i, raw in enumerate(paths):
            normal = _normal(raw)
            where = f"spec.{field}[{i}].{attr}"
            if normal in seen:
                raise InvalidObject(where, f"duplicate {attr} {raw!r} (the same as {seen[normal]!r})")
            if nested:
                outer = next((seen[p] for p in _parents(normal) if p in seen), None)
                inner = below.get(normal)
                if outer is not None or inner is not None:
                    raise InvalidObject(where, f"{attr} {raw!r} overlaps {outer or inner!r}: one lies inside the "
                                        "other, so one would overwrite the other")
                for parent in _parents(normal):
                    below.setdefault(parent, raw)
            seen[normal] = raw


def check_object(obj: Resource) -> None:
    """Rules every stored object must satisfy beyond its schema."""
    _check_object(obj)
    spec = obj.spec if isinstance(obj, Pod) else obj.spec.template.spec if isinstance(obj, Job) else None
    where = missing_image(spec, "spec" if isinstance(obj, Pod) else "spec.template.spec") if spec else None
    if where:
        raise InvalidObject(where, MISSING_IMAGE)


def _check_object(obj: Resource) -> None:
    if not obj.metadata.name and not obj.metadata.generate_name:
        raise InvalidObject("metadata.name", "required: every object needs a name (or a generateName)")
    check_annotations(obj.metadata.annotations, "metadata", pilot=isinstance(obj, (Workflow, WorkflowTemplate)))
    if isinstance(obj, Pod):
        check_pod_spec(obj.spec, "spec")
    elif isinstance(obj, Pipeline):
        check_pipeline(obj)
    elif isinstance(obj, Dataset):
        check_dataset(obj)
    elif isinstance(obj, ConfigMap):
        both = next((key for key in obj.binary_data if key in obj.data), None)
        if both is not None:  # Kubernetes' rule: one key, one value (a volume would hold one file for both)
            raise InvalidObject(f"binaryData[{both}]", "duplicate of key present in data")
    elif isinstance(obj, (Workflow, WorkflowTemplate)):
        from podline.api.workflow_checks import check_workflow  # it uses this module's helpers

        check_workflow(obj)
    elif isinstance(obj, Job):
        check_name_length(obj.metadata, MAX_JOB_NAME, "Job", "it is the job-name label of its pods")
        check_pod_spec(obj.spec.template.spec, "spec.template.spec")
        check_annotations(obj.spec.template.metadata.annotations, "spec.template.metadata")
        if obj.spec.completion_mode == "Indexed" and obj.spec.completions is None:
            raise InvalidObject("spec.completions", "completions is required when completionMode is Indexed")
        if obj.spec.template.spec.restart_policy == "Always":
            raise InvalidObject("spec.template.spec.restartPolicy",
                                "must be OnFailure or Never for a Job (got 'Always')")
        check_per_index_limits(obj)
        if obj.spec.pod_failure_policy is not None:
            check_pod_failure_policy(obj)
        if obj.spec.success_policy is not None:
            check_success_policy(obj)


def check_success_policy(job: Job) -> None:
    """Kubernetes' rules for `successPolicy`: an Indexed Job; each rule names indexes below completions, a
    count, or both (the count at most the indexes named)."""
    assert job.spec.success_policy is not None
    if job.spec.completion_mode != "Indexed":
        raise InvalidObject("spec.successPolicy", "requires completionMode Indexed")
    completions = job.spec.completions or 0
    for i, rule in enumerate(job.spec.success_policy.rules):
        where = f"spec.successPolicy.rules[{i}]"
        if rule.succeeded_indexes is None and rule.succeeded_count is None:
            raise InvalidObject(where, "at least one of succeededIndexes and succeededCount is required")
        named = completions
        if rule.succeeded_indexes is not None:
            try:
                intervals = index_intervals(rule.succeeded_indexes)
            except ValueError as exc:
                raise InvalidObject(f"{where}.succeededIndexes", str(exc)) from None
            if intervals[-1][1] >= completions:
                raise InvalidObject(f"{where}.succeededIndexes", f"index {intervals[-1][1]} is not below "
                                    f"completions ({completions})")
            named = sum(high - low + 1 for low, high in intervals)
        if rule.succeeded_count is not None and rule.succeeded_count > named:
            raise InvalidObject(f"{where}.succeededCount", f"must be at most {named} (the indexes it may count), "
                                f"got {rule.succeeded_count}")


def check_per_index_limits(job: Job) -> None:
    """Kubernetes' rules for `backoffLimitPerIndex` and `maxFailedIndexes`: an Indexed Job of Never pods."""
    spec = job.spec
    if spec.max_failed_indexes is not None and spec.backoff_limit_per_index is None:
        raise InvalidObject("spec.maxFailedIndexes", "requires backoffLimitPerIndex")
    if spec.backoff_limit_per_index is None:
        return
    if spec.completion_mode != "Indexed":
        raise InvalidObject("spec.backoffLimitPerIndex", "requires completionMode Indexed")
    if spec.template.spec.restart_policy != "Never":
        raise InvalidObject("spec.template.spec.restartPolicy", "must be Never when backoffLimitPerIndex is set")
    if spec.max_failed_indexes is not None and spec.max_failed_indexes > (spec.completions or 0):
        raise InvalidObject("spec.maxFailedIndexes",
                            f"must be at most completions ({spec.completions}), got {spec.max_failed_indexes}")


def check_pod_failure_policy(job: Job) -> None:
    """Kubernetes' rules for `podFailurePolicy` (one matcher per rule; exit code 0 cannot be "In")."""
    assert job.spec.pod_failure_policy is not None
    if job.spec.template.spec.restart_policy != "Never":
        raise InvalidObject("spec.template.spec.restartPolicy", "must be Never when podFailurePolicy is set")
    if job.spec.pod_replacement_policy not in (None, "Failed"):
        raise InvalidObject("spec.podReplacementPolicy",
                            f"{job.spec.pod_replacement_policy!r} is not supported with podFailurePolicy "
                            "(only 'Failed')")
    names = {c.name for c in job.spec.template.spec.containers + job.spec.template.spec.init_containers}
    for i, rule in enumerate(job.spec.pod_failure_policy.rules):
        where = f"spec.podFailurePolicy.rules[{i}]"
        if rule.action == "FailIndex" and job.spec.backoff_limit_per_index is None:
            raise InvalidObject(f"{where}.action", "FailIndex requires backoffLimitPerIndex")
        if (rule.on_exit_codes is None) == (not rule.on_pod_conditions):
            raise InvalidObject(where, "exactly one of onExitCodes and onPodConditions is required")
        codes = rule.on_exit_codes
        if codes is not None:
            if codes.operator == "In" and 0 in codes.values:
                raise InvalidObject(f"{where}.onExitCodes.values", "0 is not allowed with operator In")
            if len(set(codes.values)) != len(codes.values):
                raise InvalidObject(f"{where}.onExitCodes.values", "duplicate values")
            if codes.container_name is not None and codes.container_name not in names:
                raise InvalidObject(f"{where}.onExitCodes.containerName",
                                    f"{codes.container_name!r} is not a container of the pod template")
