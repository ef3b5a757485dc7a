"""A container's environment: `env` and `envFrom`, and the names and keys by which they (and volumes, and
artifacts' credentials) refer to ConfigMaps and Secrets. A reference is checked as the object it names would be:
a DNS-1123 subdomain name, a key as a ConfigMap's or Secret's data key (nothing else could exist to be read), an
envFrom prefix as the start of an environment variable name."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, field_validator, model_validator

from podline.api.base import Model, check_dns_subdomain, check_no_nul
from podline.api.quantity import parse_quantity

ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
Text = Annotated[str, AfterValidator(check_no_nul)]


def check_data_key(key: str) -> str:
    if not DATA_KEY.fullmatch(key) or len(key) > 253:
        raise ValueError(f"invalid key {key!r}: use letters, digits, '-', '_' and '.'")
    if key in (".", "..") or key.startswith(".."):  # a volume file of that name would be its directory
        raise ValueError(f"invalid key {key!r}: must not be '.' or '..', nor start with '..'")
    return key


def _check_prefix(value: str) -> str:
    """Kubernetes: a non-empty envFrom prefix must itself be a valid variable name, so that with any data key
    (letters, digits, '-', '_', '.') it makes one."""
    if value and not ENV_NAME.fullmatch(value):
        raise ValueError(f"invalid prefix {value!r}: must be a valid environment variable name (letters, digits, "
                         "'-', '_' and '.', not starting with a digit)")
    return value


ObjectName = Annotated[str, AfterValidator(check_dns_subdomain)]  # of a ConfigMap or Secret
DataKey = Annotated[str, AfterValidator(check_data_key)]


class ObjectFieldSelector(Model):
    field_path: str
    api_version: str | None = None

    @field_validator("field_path")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value in {"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                     "status.podIP", "status.hostIP"}:
            return value
        if re.fullmatch(r"metadata\.(labels|annotations)\['[^']+'\]", value):
            return value
        if value in {"metadata.labels", "metadata.annotations"}:
            return value
        raise ValueError(f"unsupported fieldPath {value!r}")


class ResourceFieldSelector(Model):
    """A container's request or limit, in units of `divisor` rounded up (the Downward API's resourceFieldRef:
    OMP_NUM_THREADS from limits.cpu); a limit not set is what the node (or the Slurm allocation) has."""

    container_name: str | None = None
    resource: Literal["limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu", "requests.memory",
                      "requests.ephemeral-storage"]
    divisor: str = "1"

    @field_validator("divisor")
    @classmethod
    def _divisor(cls, value: str) -> str:
        if parse_quantity(str(value)) <= 0:
            raise ValueError(f"divisor {value!r} must be above zero")
        return str(value)


class KeySelector(Model):
    name: ObjectName
    key: DataKey
    optional: bool = False


class EnvVarSource(Model):
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    config_map_key_ref: KeySelector | None = None
    secret_key_ref: KeySelector | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvVarSource:
        given = (self.field_ref, self.resource_field_ref, self.config_map_key_ref, self.secret_key_ref)
        if sum(x is not None for x in given) != 1:
            raise ValueError("exactly one of fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef must be set")
        return self


class EnvVar(Model):
    name: str
    value: Text | None = None
    value_from: EnvVarSource | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not ENV_NAME.fullmatch(value):
            raise ValueError(f"invalid environment variable name {value!r}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError("value and valueFrom are mutually exclusive")
        return self


class RefName(Model):
    name: ObjectName
    optional: bool = False


class EnvFromSource(Model):
    prefix: Annotated[str, AfterValidator(_check_prefix)] = ""
    config_map_ref: RefName | None = None
    secret_ref: RefName | None = None

    @model_validator(mode="after")
    def _one_source(self) -> EnvFromSource:
        if (self.config_map_ref is None) == (self.secret_ref is None):
            raise ValueError("exactly one of configMapRef, secretRef must be set")
        return self
