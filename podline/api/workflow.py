"""`argoproj.io/v1alpha1 Workflow`: Argo's templates (container, script, steps, dag), parameters, artifacts.

The model keeps Argo's field names, and leaves optional fields unset rather than defaulted, so the dumped
manifest is the Argo document the controller walks (a stored dict, as Argo's own controller reads it).
The few normalisations: numbers and booleans given for a parameter's `value`/`default`/`enum` become the
strings Argo makes of them; a retry `limit`, an `activeDeadlineSeconds` and `withSequence` bounds given as
digit strings become integers; a container template without `name` is named `main`.

Argo fields podline does not act on, with no effect on results (scheduling and security hints, garbage
collection), are `IGNORED` warnings; fields whose absence would change results (remote artifact sources,
sidecars, template types other than container/script/steps/dag …) are errors naming the field.
Cross-references between templates, steps and tasks are checked in `api.workflow_checks`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    field_validator,
    model_validator,
)

from podline.api.base import (
    Model,
    ObjectMeta,
    QualifiedKey,
    Resource,
    check_dns_label,
    check_dns_subdomain,
)
from podline.api.core import Arg, Container, KeySelector, Text, Volume
from podline.api.workflow_values import (
    MAX_LOOP,
    MAX_TEMPLATES,
    ArgoName,
    Arguments,
    Duration,
    Inputs,
    Outputs,
    SequenceBound,
    TemplateType,
    Unsupported,
    check_items,
    duration_or_reference,
    label_value,
    retry_limit,
    seconds_or_reference,
    whole_number,
)


class PodMetadata(Model):
    labels: dict[QualifiedKey, Annotated[str, AfterValidator(label_value)]] | None = None
    annotations: dict[QualifiedKey, Text] | None = None


class ClaimMetadata(Model):
    name: Annotated[str, AfterValidator(lambda v: check_dns_label(v, "claim name"))]
    labels: dict[QualifiedKey, Text] | None = None
    annotations: dict[QualifiedKey, Text] | None = None


class ClaimTemplate(Model):
    """spec.volumeClaimTemplates[]: a claim made for this workflow, `<workflow>-<name>`, i.e. a directory on
    the context's shared directory; its `spec` (size, access modes, storage class) has nothing to act on."""

    metadata: ClaimMetadata
    IGNORED: ClassVar[frozenset[str]] = frozenset({"spec", "apiVersion", "kind"})


class VolumeClaimGC(Model):
    strategy: Literal["OnWorkflowCompletion", "OnWorkflowSuccess"] = "OnWorkflowCompletion"


# --- containers, retries, loops ---------------------------------------------------------------------

class WorkflowContainer(Container):
    name: str = "main"


class Sidecar(Container):
    """A container beside a step's main one (Argo's `sidecars`): it runs as a Kubernetes sidecar of the step's
    pod and is stopped once the main container is done; `mirrorVolumeMounts` gives it main's mounts."""

    mirror_volume_mounts: bool = False

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in ("main", "wait", "init"):
            raise ValueError(f"sidecar name {value!r} is reserved by Argo (main, wait, init)")
        return value


class ScriptTemplate(WorkflowContainer):
    """A container whose `source` podline writes to a file and runs with the container's command."""

    source: Arg


class Backoff(Model):
    duration: Duration | None = None
    factor: Annotated[int | float, BeforeValidator(whole_number), Field(ge=1, le=1000)] | None = None
    max_duration: Duration | None = None
    cap: Duration | None = None


class CacheConfigMap(Model):
    name: Annotated[str, AfterValidator(check_dns_subdomain)]
    key: Text | None = None  # Argo's selector has one; entries are keyed by the memoize key


class MemoizeCache(Model):
    config_map: CacheConfigMap


class Memoize(Model):
    """A step's outputs kept in a ConfigMap under `key`: a later step (of this or another workflow) with the same
    key takes them instead of running, while the entry is younger than `maxAge` (Argo's memoization)."""

    key: Arg
    max_age: Duration | None = None
    cache: MemoizeCache


class RetryStrategy(Model):
    affinity: Unsupported = None
    expression: Arg | None = None  # over lastRetry.exitCode/status/duration/message: retry only when true
    limit: Annotated[int | str, PlainValidator(retry_limit)] | None = None
    retry_policy: Literal["Always", "OnFailure", "OnError", "OnTransientError"] | None = None
    backoff: Backoff | None = None


class Sequence(Model):
    count: SequenceBound | None = None
    start: SequenceBound | None = None
    end: SequenceBound | None = None
    format: Text | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Sequence:
        if (self.count is None) == (self.end is None):
            raise ValueError("exactly one of count and end is required")
        if isinstance(self.count, int) and not 0 <= self.count <= MAX_LOOP:
            raise ValueError(f"count must be from 0 to {MAX_LOOP}")
        if isinstance(self.end, int) and isinstance(self.start or 0, int) and \
                abs(self.end - int(self.start or 0)) >= MAX_LOOP:
            raise ValueError(f"a sequence may have at most {MAX_LOOP} items")
        return self


class ContinueOn(Model):
    failed: bool | None = None
    error: bool | None = None


class TemplateRef(Model):
    """A template of a WorkflowTemplate (or, with clusterScope, of a ClusterWorkflowTemplate) called by name."""

    name: Annotated[str, AfterValidator(check_dns_subdomain)]
    template: ArgoName
    cluster_scope: bool | None = None


class LifecycleHook(Model):
    """`hooks.exit`: a template run after the step, task or workflow, like `onExit` but with arguments; any
    other hook runs its template once its `expression` holds (`steps["a"].status == "Running"`)."""

    expression: Arg | None = None
    template_ref: Unsupported = None
    template: Text
    arguments: Arguments | None = None


def _hook_expressions(value: dict[str, LifecycleHook] | None) -> dict[str, LifecycleHook] | None:
    for key, hook in (value or {}).items():
        if not re.fullmatch(r"[A-Za-z0-9][-A-Za-z0-9_]{0,62}", key):
            raise ValueError(f"hook name {key!r}: letters, digits, '-' and '_' (it names the hook's node)")
        if key != "exit" and hook.expression is None:
            raise ValueError(f"hook {key!r}: a hook other than `exit` needs an expression saying when it runs")
        if key == "exit" and hook.expression is not None:
            raise ValueError("hook 'exit': runs when its step or workflow ends; it takes no expression")
    return value


Hooks = Annotated[dict[str, LifecycleHook] | None, AfterValidator(_hook_expressions)]


class WorkflowStep(Model):
    """One call of a template in a steps group: `template` (a name in the caller's templates) or `templateRef`
    (one of a WorkflowTemplate's), exactly one of them (checked with its path)."""

    inline: InlineTemplate | None = None  # a template written in the call itself (exactly one of the three)
    on_exit: Text | None = None  # a template run after this step or task ends (checked there)
    hooks: Hooks = None
    name: ArgoName
    template: Text | None = None  # a name in spec.templates (checked there)
    template_ref: TemplateRef | None = None  # resolved against the stored WorkflowTemplates (api.template_refs)
    arguments: Arguments | None = None
    when: Arg | None = None
    with_items: Annotated[list[Any], AfterValidator(check_items)] | None = None
    with_param: Arg | None = None
    with_sequence: Sequence | None = None
    continue_on: ContinueOn | None = None


class DAGTask(WorkflowStep):
    dependencies: list[ArgoName] | None = None
    depends: Arg | None = None


class DAGTemplate(Model):
    target: Arg | None = None  # space-separated task names: only they and what they depend on run
    tasks: list[DAGTask] = Field(min_length=1, max_length=MAX_TEMPLATES)
    fail_fast: bool | None = None


# --- templates and the workflow ---------------------------------------------------------------------

TEMPLATE_TYPES = ("container", "script", "steps", "dag", "suspend")


class SuspendTemplate(Model):
    """A pause of `duration` (then the node succeeds); without one Argo waits for `argo resume`, which podline
    does not have, so a duration is required (checked with its path)."""

    duration: Annotated[str, BeforeValidator(duration_or_reference)] | None = None


class Template(Model):
    resource: TemplateType = None
    data: TemplateType = None
    http: TemplateType = None
    container_set: TemplateType = None
    plugin: TemplateType = None
    daemon: Unsupported = None
    pod_spec_patch: Unsupported = None
    memoize: Memoize | None = None
    synchronization: Synchronization | None = None
    metrics: Unsupported = None
    init_containers: Unsupported = None
    sidecars: list[Sidecar] | None = Field(default=None, max_length=16)
    name: ArgoName
    inputs: Inputs | None = None
    outputs: Outputs | None = None
    container: WorkflowContainer | None = None
    script: ScriptTemplate | None = None
    steps: list[Annotated[list[WorkflowStep], Field(min_length=1)]] | None = Field(default=None, min_length=1)
    dag: DAGTemplate | None = None
    suspend: SuspendTemplate | None = None
    retry_strategy: RetryStrategy | None = None
    active_deadline_seconds: Annotated[int | str, PlainValidator(seconds_or_reference)] | None = None
    metadata: PodMetadata | None = None
    volumes: list[Volume] | None = None
    parallelism: int | None = Field(default=None, ge=1, le=MAX_LOOP)
    fail_fast: bool | None = None
    timeout: Annotated[str, BeforeValidator(duration_or_reference)] | None = None
    IGNORED: ClassVar[frozenset[str]] = frozenset(
        {"nodeSelector", "tolerations", "affinity", "securityContext", "serviceAccountName", "archiveLocation",
         "priorityClassName", "priority", "hostAliases", "executor", "automountServiceAccountToken",
         "schedulerName"}
    )

    @model_validator(mode="after")
    def _one_type(self) -> Template:
        if sum(getattr(self, field) is not None for field in TEMPLATE_TYPES) != 1:
            raise ValueError("exactly one of container, script, steps, dag, suspend is required")
        if self.sidecars and self.container is None and self.script is None:
            raise ValueError("sidecars: only a container or script template runs a pod to put them in")
        names = [c.name for c in self.sidecars or []]
        if len(set(names)) != len(names):
            raise ValueError("sidecars: names must be unique")
        return self

    @property
    def type(self) -> str:
        return next(field for field in TEMPLATE_TYPES if getattr(self, field) is not None)


class InlineTemplate(Template):
    """A step's or task's own template (`inline`), unnamed: its node and pod take the step's name."""

    name: ArgoName | None = None  # type: ignore[assignment]


class TemplateDefaults(Template):
    """`spec.templateDefaults`: fields every template takes unless it sets them (strategic merge); a type's
    fields (`container: {…}`) reach only templates of that type."""

    name: ArgoName | None = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _one_type(self) -> TemplateDefaults:  # any number of types: each applies to its own kind of template
        return self


class MutexRef(Model):
    name: Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]{1,253}$")]
    namespace: Annotated[str, AfterValidator(check_dns_label)] | None = None


class SemaphoreRef(Model):
    database: Unsupported = None
    config_map_key_ref: KeySelector
    namespace: Annotated[str, AfterValidator(check_dns_label)] | None = None


class Synchronization(Model):
    """Argo's locks: a mutex (one holder) or a semaphore (as many as a ConfigMap entry says), for the workflow
    or for each node of a template; holders across all workflows of the controller, first come first served."""

    mutex: MutexRef | None = None
    semaphore: SemaphoreRef | None = None
    mutexes: list[MutexRef] | None = None
    semaphores: list[SemaphoreRef] | None = None

    @model_validator(mode="after")
    def _some_lock(self) -> Synchronization:
        if not any((self.mutex, self.semaphore, self.mutexes, self.semaphores)):
            raise ValueError("name a mutex or a semaphore")
        return self


class WorkflowTemplateRef(Model):
    """A Workflow made from a WorkflowTemplate's spec (its own fields win, arguments merge by name)."""

    name: Annotated[str, AfterValidator(check_dns_subdomain)]
    cluster_scope: bool | None = None


class WorkflowSpec(Model):
    """A Workflow's spec, and a (Cluster)WorkflowTemplate's: `entrypoint` and `templates` are required of a
    Workflow unless it names a `workflowTemplateRef` (checked in `api.workflow_checks` with their paths)."""

    workflow_template_ref: WorkflowTemplateRef | None = None
    template_defaults: TemplateDefaults | None = None
    hooks: Hooks = None
    synchronization: Synchronization | None = None
    metrics: Unsupported = None
    suspend: Unsupported = None
    shutdown: Unsupported = None
    retry_strategy: RetryStrategy | None = None  # every template's that has none, as Argo has it
    pod_spec_patch: Unsupported = None
    entrypoint: Text | None = None  # names in spec.templates (checked there)
    templates: list[Template] | None = Field(default=None, min_length=1, max_length=MAX_TEMPLATES)
    arguments: Arguments | None = None
    on_exit: Text | None = None
    parallelism: int | None = Field(default=None, ge=1, le=MAX_LOOP)
    active_deadline_seconds: int | None = Field(default=None, ge=1, le=10**9)
    volumes: list[Volume] | None = None
    volume_claim_templates: list[ClaimTemplate] | None = None
    volume_claim_gc: VolumeClaimGC | None = Field(default=None, alias="volumeClaimGC")
    pod_metadata: PodMetadata | None = None
    IGNORED: ClassVar[frozenset[str]] = frozenset(
        {"serviceAccountName", "podGC", "ttlStrategy", "nodeSelector", "tolerations", "affinity",
         "securityContext", "imagePullSecrets", "workflowMetadata", "archiveLogs", "podDisruptionBudget",
         "priority", "hostNetwork", "dnsPolicy", "dnsConfig", "artifactRepositoryRef", "executor",
         "podPriorityClassName", "podPriority", "schedulerName", "hostAliases", "automountServiceAccountToken",
         "artifactGC"}
    )


class Workflow(Resource):
    api_version: Literal["argoproj.io/v1alpha1"]
    kind: Literal["Workflow"]
    spec: WorkflowSpec


class WorkflowTemplate(Resource):
    """A library of templates that Workflows call through `templateRef`, or start from (`workflowTemplateRef`):
    stored, never run by itself."""

    api_version: Literal["argoproj.io/v1alpha1"]
    kind: Literal["WorkflowTemplate"]
    spec: WorkflowSpec


class ClusterObjectMeta(ObjectMeta):
    """A cluster-scoped object's metadata: no namespace (one given is dropped, as the API server does)."""

    namespace: Literal[""] = ""
    SILENT: ClassVar[frozenset[str]] = ObjectMeta.SILENT | {"namespace"}

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return value


class ClusterWorkflowTemplate(WorkflowTemplate):
    """A WorkflowTemplate every namespace sees (`templateRef: {clusterScope: true}`)."""

    kind: Literal["ClusterWorkflowTemplate"]  # type: ignore[assignment]
    metadata: ClusterObjectMeta

    def dump(self) -> dict[str, Any]:
        out = super().dump()
        out["metadata"].pop("namespace", None)  # stored under namespace "", written without one
        return out
