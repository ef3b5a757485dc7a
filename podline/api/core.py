"""`v1` kinds: Pod (and its containers, env, volumes, resources), ConfigMap, Secret."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, PlainValidator, field_validator, model_validator

from podline.api.base import Model, Resource, check_dns_label, check_dns_subdomain, check_no_nul, warnings_var
from podline.api.env import (  # noqa: F401  (KeySelector, Text: also this module's names)
    DataKey,
    EnvFromSource,
    EnvVar,
    KeySelector,
    ObjectFieldSelector,
    ObjectName,
    Text,
)
from podline.api.quantity import MAX_CPU, MAX_GPU, MAX_MEMORY, parse_quantity

# Beyond these a request is a typo, not a machine (checked in api.checks with the exact path).
RESOURCE_LIMITS = {"cpu": MAX_CPU, "memory": MAX_MEMORY, "nvidia.com/gpu": MAX_GPU,
                   "ephemeral-storage": MAX_MEMORY}
MAX_STRING = 128 * 1024


def check_relative_path(value: str, what: str = "path") -> str:
    """A path inside a volume or workspace: relative, no `..` component, no NUL."""
    if not value or value.startswith("/") or "\0" in value:
        raise ValueError(f"{what} {value!r} must be a non-empty relative path")
    if ".." in value.split("/"):
        raise ValueError(f"{what} {value!r} must not contain '..'")
    if all(part in ("", ".") for part in value.split("/")):
        raise ValueError(f"{what} {value!r} must name something below its directory, not the directory itself")
    return value


NOT_IN_IMAGE = re.compile(r"""[\s'"`$;|&<>\\]|[\x00-\x1f\x7f]""")


def _check_image(value: str) -> str:
    """An image is a reference (`busybox`, `reg:5000/a/b:1@sha256:…`), a `{{…}}` an Argo template fills in, or
    a local archive/layout/rootfs path with a prefix (`oci-archive:/images/t.tar`): none holds blanks, quotes
    or shell metacharacters, so one that does is a hostile or broken manifest (SPEC: exit 2)."""
    found = NOT_IN_IMAGE.search(value)
    if found:
        raise ValueError(f"invalid image {value[:80]!r}: {found.group()!r} has no place in an image reference")
    if value and "{{" not in value:  # the reference parser the runtime pulls with, at apply (helper-80: `a(x)`)
        from podline.images.errors import INVALID_NAME, ImageError
        from podline.images.reference import parse_reference

        try:
            parse_reference(value)
        except ImageError as exc:
            if exc.reason == INVALID_NAME:  # (not one the context's runtime cannot run: that is the pod's reason)
                raise ValueError(str(exc)) from None
    return value


ImageRef = Annotated[str, AfterValidator(check_no_nul), AfterValidator(_check_image)]


def _check_arg(value: str) -> str:
    check_no_nul(value)
    if len(value) > MAX_STRING:
        raise ValueError("must not exceed 128 KiB")
    return value


Arg = Annotated[str, AfterValidator(_check_arg)]


def _non_negative_quantity(raw: object) -> int | float | str:
    """A quantity as Kubernetes accepts it: a number or a string such as '500m' (never a bool)."""
    if parse_quantity(raw) < 0:  # parse_quantity rejects bools and other types
        raise ValueError(f"must not be negative, got {raw!r}")
    return raw  # type: ignore[return-value]


ResourceName = Literal["cpu", "memory", "nvidia.com/gpu", "ephemeral-storage"]
Quantity = Annotated[int | float | str, PlainValidator(_non_negative_quantity)]
Quantities = dict[ResourceName, Quantity]


EPHEMERAL_WARNING = ("resources ephemeral-storage is accepted but not enforced (on Slurm, node-local disk is asked "
                     "for with --tmp in the slurm.hpk.io/flags annotation)")


class ResourceRequirements(Model):
    requests: Quantities = Field(default_factory=dict)
    limits: Quantities = Field(default_factory=dict)
    IGNORED: ClassVar[frozenset[str]] = frozenset({"claims"})

    def effective_requests(self) -> dict[str, Any]:
        """Kubernetes defaults a missing request to the limit."""
        return {**self.limits, **self.requests}

    @model_validator(mode="after")
    def _ephemeral_storage_is_not_enforced(self) -> ResourceRequirements:
        """Accepted (charts set it everywhere) but neither scheduled nor enforced: say so, never silently."""
        if "ephemeral-storage" in self.requests or "ephemeral-storage" in self.limits:
            sink = warnings_var.get()
            if sink is not None and EPHEMERAL_WARNING not in sink:  # once per object, not per container
                sink.append(EPHEMERAL_WARNING)
        return self


class VolumeMount(Model):
    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str | None = None
    IGNORED: ClassVar[frozenset[str]] = frozenset({"mountPropagation", "subPathExpr"})

    @field_validator("mount_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or "\0" in value or ".." in value.split("/"):
            raise ValueError(f"mountPath {value!r} must be an absolute path without '..'")
        if not value.strip("/."):
            raise ValueError(f"mountPath {value!r} would cover the container's whole filesystem")
        return value

    @field_validator("sub_path")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        return None if not value else check_relative_path(value, "subPath")  # "": the whole volume


class Container(Model):
    name: str
    image: ImageRef = ""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    command: list[Arg] = Field(default_factory=list)
    args: list[Arg] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    env_from: list[EnvFromSource] = Field(default_factory=list)
    working_dir: str | None = None
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    volume_mounts: list[VolumeMount] = Field(default_factory=list)
    IGNORED: ClassVar[frozenset[str]] = frozenset(
        {"ports", "livenessProbe", "readinessProbe", "startupProbe", "securityContext", "lifecycle",
         "stdin", "stdinOnce", "tty", "resizePolicy", "restartPolicy"}
    )
    termination_message_path: str | None = None  # (Kubernetes' default: /dev/termination-log)
    termination_message_policy: Literal["File", "FallbackToLogsOnError"] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_dns_label(value, "container name")

    @field_validator("termination_message_path")
    @classmethod
    def _message_path(cls, value: str | None) -> str | None:
        if value not in (None, "/dev/termination-log"):  # no file of the container is read back yet: say so
            sink = warnings_var.get()
            if sink is not None:
                sink.append("Container.terminationMessagePath is not read by podline (FallbackToLogsOnError is: "
                            "the log's end becomes the message of a failed container)")
        return value

    @field_validator("image_pull_policy", mode="before")
    @classmethod
    def _unset_policy(cls, value: object) -> object:
        return None if value == "" else value  # "": the default, as the API server fills it in

    @field_validator("working_dir")
    @classmethod
    def _workdir(cls, value: str | None) -> str | None:
        if value == "":
            return None  # the image's, as the runtime reads an empty one
        if value is not None and (not value.startswith("/") or "\0" in value):
            raise ValueError(f"workingDir {value!r} must be an absolute path")
        return value


class InitContainer(Container):
    """`restartPolicy: Always` makes it a sidecar (Kubernetes 1.29): started in its turn among the init
    containers, it runs beside the rest until the containers are done, then it is stopped."""

    restart_policy: Literal["Always"] | None = None
    IGNORED: ClassVar[frozenset[str]] = Container.IGNORED - {"restartPolicy"}

    @property
    def is_sidecar(self) -> bool:
        return self.restart_policy == "Always"


class KeyToPath(Model):
    key: DataKey
    path: str
    mode: int | None = Field(default=None, ge=0, le=0o777)
    _path = field_validator("path")(classmethod(lambda cls, v: check_relative_path(v)))


def _size_limit(value: int | float | str) -> int | float | str:
    amount = parse_quantity(value)
    if amount <= 0 or amount > MAX_MEMORY:
        raise ValueError(f"sizeLimit {value!r} must be positive and sane")
    return value


SizeLimit = Annotated[Quantity, AfterValidator(_size_limit)]  # an emptyDir's or a workspace's


class EmptyDirSource(Model):
    medium: Literal["", "Memory"] = ""
    size_limit: SizeLimit | None = None


class HostPathSource(Model):
    path: str
    type: Literal["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                  "CharDevice", "BlockDevice"] = ""

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or "\0" in value:
            raise ValueError(f"hostPath.path {value!r} must be absolute")
        return value


class ConfigMapVolumeSource(Model):
    name: ObjectName
    items: list[KeyToPath] = Field(default_factory=list)
    default_mode: int = Field(default=0o644, ge=0, le=0o777)
    optional: bool = False


class SecretVolumeSource(Model):
    secret_name: ObjectName
    items: list[KeyToPath] = Field(default_factory=list)
    default_mode: int = Field(default=0o600, ge=0, le=0o777)
    optional: bool = False


class DownwardAPIFile(Model):
    path: str
    field_ref: ObjectFieldSelector
    mode: int | None = Field(default=None, ge=0, le=0o777)
    _path = field_validator("path")(classmethod(lambda cls, v: check_relative_path(v)))


class DownwardAPISource(Model):
    items: list[DownwardAPIFile] = Field(default_factory=list)
    default_mode: int = Field(default=0o644, ge=0, le=0o777)


class PersistentVolumeClaimSource(Model):
    """A named volume that outlives pods: a directory of that name on the context's shared directory."""

    claim_name: Annotated[str, AfterValidator(lambda v: check_dns_subdomain(v, "claimName"))]
    read_only: bool = False


class Volume(Model):
    name: str
    empty_dir: EmptyDirSource | None = None
    persistent_volume_claim: PersistentVolumeClaimSource | None = None
    host_path: HostPathSource | None = None
    config_map: ConfigMapVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    downward_api: DownwardAPISource | None = Field(default=None, alias="downwardAPI")

    _name = field_validator("name")(classmethod(lambda cls, v: check_dns_label(v, "volume name")))

    @model_validator(mode="after")
    def _one_source(self) -> Volume:
        sources = [self.empty_dir, self.host_path, self.config_map, self.secret, self.downward_api,
                   self.persistent_volume_claim]
        if sum(s is not None for s in sources) != 1:
            raise ValueError("exactly one volume source (emptyDir, hostPath, configMap, secret, "
                             "downwardAPI, persistentVolumeClaim) must be set")
        return self


class PodSpec(Model):
    containers: list[Container] = Field(min_length=1)
    init_containers: list[InitContainer] = Field(default_factory=list)
    volumes: list[Volume] = Field(default_factory=list)
    restart_policy: Literal["Always", "OnFailure", "Never"] = "Always"
    active_deadline_seconds: int | None = Field(default=None, ge=1, le=10**9)
    termination_grace_period_seconds: int = Field(default=30, ge=0, le=86400)
    IGNORED: ClassVar[frozenset[str]] = frozenset(
        {"nodeSelector", "affinity", "tolerations", "serviceAccountName", "serviceAccount",
         "securityContext", "imagePullSecrets", "dnsPolicy", "priorityClassName", "schedulerName",
         "hostNetwork", "enableServiceLinks", "automountServiceAccountToken", "hostname", "subdomain",
         "nodeName", "priority", "preemptionPolicy", "topologySpreadConstraints", "shareProcessNamespace"}
    )




class Pod(Resource):
    api_version: Literal["v1"]
    kind: Literal["Pod"]
    spec: PodSpec


def missing_image(spec: PodSpec, base: str) -> str | None:
    """Path of the first container with no image and nothing to run, checked at apply for Pods and Jobs.

    Kubernetes requires `image` on every container; podline's host runtime runs `command`/`args` on the
    host without one (tests, examples and Pipeline steps rely on that), so a container is refused only when
    it has neither an image nor a command or args: no runtime could ever start it (it would crash-loop).
    Not a model validator: manifests stored before this rule must still load in the controller."""
    for field, containers in (("initContainers", spec.init_containers), ("containers", spec.containers)):
        for i, container in enumerate(containers):
            if not container.image and not container.command and not container.args:
                return f"{base}.{field}[{i}].image"
    return None


def _check_base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("value is not valid base64") from exc
    return value


def _check_total(value: dict[str, str]) -> dict[str, str]:
    if sum(len(v) for v in value.values()) > 1024 * 1024:
        raise ValueError("data is larger than 1 MiB")
    return value


Base64 = Annotated[str, AfterValidator(_check_base64)]


class ConfigMap(Resource):
    api_version: Literal["v1"]
    kind: Literal["ConfigMap"]
    data: dict[DataKey, str] = Field(default_factory=dict)
    binary_data: dict[DataKey, Base64] = Field(default_factory=dict)
    immutable: bool = False
    _total = field_validator("data", "binary_data")(classmethod(lambda cls, v: _check_total(v)))


class Secret(Resource):
    api_version: Literal["v1"]
    kind: Literal["Secret"]
    type: str = "Opaque"
    data: dict[DataKey, Base64] = Field(default_factory=dict)
    string_data: dict[DataKey, str] = Field(default_factory=dict)
    immutable: bool = False
    _total = field_validator("data", "string_data")(classmethod(lambda cls, v: _check_total(v)))

    @model_validator(mode="after")
    def _merge_string_data(self) -> Secret:
        """stringData is written into data (base64) and never kept, as the API server does: `get -o yaml`
        must not show the values in clear."""
        if self.string_data:
            encoded = {k: base64.b64encode(v.encode()).decode() for k, v in self.string_data.items()}
            self.data = {**self.data, **encoded}
            self.string_data = {}
        return self

    def dump(self) -> dict[str, Any]:
        dumped = super().dump()
        dumped.pop("stringData", None)  # always merged into data (see above)
        return dumped

    def decoded(self) -> dict[str, bytes]:
        """stringData wins over data, as the API server merges them."""
        values = {k: base64.b64decode(v) for k, v in self.data.items()}
        values.update({k: v.encode() for k, v in self.string_data.items()})
        return values
