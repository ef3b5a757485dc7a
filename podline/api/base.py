"""Shared pieces of every resource: strict camelCase models, ObjectMeta, DNS-1123 names.

Unknown fields are errors (like `kubectl --validate=strict`); fields that Kubernetes has but podline
deliberately does not act on are listed per model in `IGNORED` and reported as warnings instead.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from podline.api.names import DNS1123_LABEL, DNS1123_SUBDOMAIN, LABEL_VALUE, QUALIFIED_NAME

# Warnings about ignored fields collected while one document is validated.
warnings_var: ContextVar[list[str] | None] = ContextVar("podline_warnings", default=None)


def check_dns_label(value: str, what: str = "name") -> str:
    if len(value) > 63 or not DNS1123_LABEL.fullmatch(value):
        raise ValueError(
            f"invalid {what} {value!r}: must be a DNS-1123 label (lower-case letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)"
        )
    return value


def check_dns_subdomain(value: str, what: str = "name") -> str:
    if len(value) > 253 or not DNS1123_SUBDOMAIN.fullmatch(value):
        raise ValueError(
            f"invalid {what} {value!r}: must be a DNS-1123 subdomain (lower-case letters, digits, '-' "
            "and '.', starting and ending with a letter or digit, at most 253 characters)"
        )
    return value


GENERATED_SUFFIX = 5  # characters `apply` appends to a generateName (api.names.generated_name)


def check_generate_name(value: str) -> str:
    """A generateName is a prefix: with the suffix `apply` adds, it must make a valid DNS-1123 subdomain."""
    if not value or len(value) > 253 - GENERATED_SUFFIX or not DNS1123_SUBDOMAIN.fullmatch(value + "a"):
        raise ValueError(
            f"invalid generateName {value!r}: must be a DNS-1123 subdomain prefix (lower-case letters, digits, "
            f"'-' and '.', starting with a letter or digit, at most {253 - GENERATED_SUFFIX} characters)"
        )
    return value


def check_label_key(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if prefix:
        check_dns_subdomain(prefix, "label prefix")
    if len(name) > 63 or not QUALIFIED_NAME.fullmatch(name):
        raise ValueError(f"invalid key {key!r}: must be a qualified name ([prefix/]name, name ≤ 63 chars)")
    return key


def check_label_value(value: str) -> str:
    if len(value) > 63 or not LABEL_VALUE.fullmatch(value):
        raise ValueError(f"invalid label value {value!r}: at most 63 letters, digits, '-', '_' or '.', "
                         "starting and ending with a letter or digit")
    return value


def check_no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain NUL bytes")
    return value


QualifiedKey = Annotated[str, AfterValidator(check_label_key)]
LabelValue = Annotated[str, AfterValidator(check_label_value)]


class Model(BaseModel):
    """Base for every manifest model: camelCase aliases, unknown fields forbidden, and strict types as the
    Kubernetes API server has them (no `true` for a number, no `"5"` for an integer)."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, validate_default=True, strict=True,
        defer_build=True,
    )
    IGNORED: ClassVar[frozenset[str]] = frozenset()
    SILENT: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _drop_ignored(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not (cls.IGNORED or cls.SILENT):
            return data
        kept = {}
        for key, value in data.items():
            if key in cls.SILENT:
                continue
            if key in cls.IGNORED:
                sink = warnings_var.get()
                if sink is not None:
                    sink.append(f"{cls.__name__}.{key} is not supported by podline and is ignored")
                continue
            kept[key] = value
        return kept

    def dump(self) -> dict[str, Any]:
        """The manifest as JSON-ready camelCase dict, without unset defaults."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ObjectMeta(Model):
    """`generateName` stands in for a missing `name`: `podline apply` then names the object (api.names)."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str = "default"
    labels: dict[QualifiedKey, LabelValue] = Field(default_factory=dict)
    annotations: dict[QualifiedKey, Annotated[str, AfterValidator(check_no_nul)]] = Field(default_factory=dict)
    # Server-populated fields (as in `kubectl get -o yaml` output) are accepted and dropped.
    SILENT: ClassVar[frozenset[str]] = frozenset(
        {"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink",
         "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences", "finalizers"}
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_dns_subdomain(value)

    @field_validator("generate_name")
    @classmethod
    def _generate_name(cls, value: str | None) -> str | None:
        return None if not value else check_generate_name(value)  # "": unset, as the API server reads it

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return check_dns_label(value, "namespace") if value else "default"

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        if sum(len(k) + len(v) for k, v in value.items()) > 256 * 1024:
            raise ValueError("annotations are larger than 256 KiB in total")
        return value


class Resource(Model):
    """A top-level object: apiVersion, kind, metadata; `status` from `get -o yaml` output is dropped."""

    api_version: str
    kind: str
    metadata: ObjectMeta
    SILENT: ClassVar[frozenset[str]] = frozenset({"status"})
