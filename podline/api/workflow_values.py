"""Argo's values: parameters, artifacts and arguments, and the field rules (names, durations, paths) that the
template models in `api.workflow` share with them. Split from `api.workflow` so each file keeps one job: this
one says what a value may be, that one how templates, steps and tasks are put together."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel

from podline.api.base import (
    Model,
    check_label_value,
    check_no_nul,
    warnings_var,
)
from podline.api.core import MAX_STRING, Arg, KeySelector, Text
from podline.api.durations import DURATION, duration_seconds

MAX_TEMPLATES = 1_000
MAX_LOOP = 100_000  # items of one withSequence: beyond this a sequence is a typo
ARGO_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")  # templates, steps, tasks (Argo's field-name rule)
PARAM_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")  # parameters and artifacts
# whole numbers: ASCII digits only, as Go and Kubernetes read them (durations: api.durations)
DIGITS = re.compile(r"-?\d{1,18}", re.ASCII)
MAX_SECONDS = 10**9  # activeDeadlineSeconds' bound, and so every duration's
REMOTE_SOURCES = ("git", "gcs", "oss", "hdfs", "artifactory", "azure", "hf", "plugin")


# --- field types ------------------------------------------------------------------------------------

def _refuser(problem: str) -> PlainValidator:
    """A field podline refuses when given: `{field}` in `problem` becomes the field's Argo name."""
    def refuse(value: Any, info: ValidationInfo) -> None:
        if value is None or value is False:  # absent, or a switch left off
            return None
        field = info.field_name or "?"
        raise ValueError(problem.format(field={"artifact_gc": "artifactGC"}.get(field, to_camel(field))))
    return PlainValidator(refuse)


Unsupported = Annotated[Any, _refuser("{field} is not supported by podline")]
TemplateType = Annotated[Any, _refuser("template type {field} is not supported by podline")]
RemoteSource = Annotated[Any, _refuser("artifact source {field} is not supported by podline (artifacts pass "
                                       "through the context's shared directory)")]


def _argo_name(value: str) -> str:
    if len(value) > 128 or not ARGO_NAME.fullmatch(value):
        raise ValueError(f"invalid name {value!r}: letters, digits and '-', starting with a letter or digit, "
                         "at most 128 characters")
    return value


def _param_name(value: str) -> str:
    if len(value) > 253 or not PARAM_NAME.fullmatch(value):
        raise ValueError(f"invalid name {value!r}: letters, digits, '-' and '_', at most 253 characters")
    return value


def _global_name(value: str) -> str:
    """An output's `globalName`: a parameter name, or one made with `{{…}}` (substituted in the template's scope
    when its step succeeds, as Argo substitutes the template's inputs into it)."""
    return check_no_nul(value) if "{{" in value else _param_name(value)


def _any_string(value: Any) -> Any:
    """Argo's AnyString: a number or boolean stands for its text (`true`, `3`, `1.5`). Numbers as Argo spells
    them: the manifest goes through JSON, where every number is a float64, written back with Go's
    FormatFloat(v, 'f', -1): `2.0` is "2", `1e3` is "1000", and an integer past 2**53 loses its last digits."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return go_number_text(float(value))
    return value


def go_number_text(number: float) -> str:
    """Go's strconv.FormatFloat(number, 'f', -1, 64): the shortest digits that read back as the same float64,
    in plain (never exponent) notation."""
    if not math.isfinite(number):
        return str(number)
    text = format(Decimal(repr(number)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def whole_number(value: Any) -> Any:
    """Argo's IntOrString for counts: a digit string is the number it spells."""
    if isinstance(value, str):
        if not DIGITS.fullmatch(value):  # no blanks around it: Kubernetes' IntOrString has none either
            raise ValueError(f"must be a whole number, got {value!r}")
        return int(value)
    return value


def _sequence_bound(value: Any) -> int | str:
    """A withSequence bound: a whole number, a digit string (made a number), or a `{{…}}` expression."""
    if isinstance(value, str) and "{{" in value:
        return check_no_nul(value)
    value = whole_number(value)
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > 10**9:
        raise ValueError(f"must be a whole number (or a {{{{...}}}} expression), got {value!r}")
    return value


MAX_RETRY_LIMIT = 10_000


def retry_limit(value: Any) -> int | str:
    """A retryStrategy's limit: a whole number up to MAX_RETRY_LIMIT, or a `{{…}}` expression (Argo's
    IntOrString, substituted when the step runs: `{{workflow.parameters.retries}}`)."""
    if isinstance(value, str) and "{{" in value:
        return check_no_nul(value)
    value = whole_number(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"must be a whole number (or a {{{{...}}}} expression), got {value!r}")
    if value < 0:
        raise ValueError(f"must be greater than or equal to 0, got {value}")
    if value > MAX_RETRY_LIMIT:
        raise ValueError(f"must be less than or equal to {MAX_RETRY_LIMIT}, got {value}")
    return value


def _duration(value: Any) -> Any:
    """A Go duration or a number of seconds, of at most MAX_SECONDS (as activeDeadlineSeconds): a longer one is a
    typo, and the controller would refuse it only once the workflow runs."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and not DURATION.fullmatch(value):
        raise ValueError(f"invalid duration {value!r}: use a number of seconds or units such as 30s, 2m, 1h")
    if isinstance(value, str) and duration_seconds(value) > MAX_SECONDS:
        raise ValueError(f"duration {value[:40]!r} is too long: at most {MAX_SECONDS} seconds (as "
                         "activeDeadlineSeconds)")
    return value


def duration_or_reference(value: Any) -> Any:
    if isinstance(value, str) and "{{" in value:
        return check_no_nul(value)  # checked once substituted
    return _duration(value)


def seconds_or_reference(value: Any) -> int | str:
    """Argo's IntOrString seconds: a whole number from 1, or a `{{…}}` expression (checked once substituted)."""
    if isinstance(value, str) and "{{" in value:
        return check_no_nul(value)
    value = whole_number(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10**9:
        raise ValueError(f"must be a whole number of seconds from 1 (or a {{{{...}}}} expression), got {value!r}")
    return value


def _container_path(value: str) -> str:
    """Where in the container a file is read or written: absolute, no `..`, or a `{{…}}` expression."""
    check_no_nul(value)
    if value.startswith("{{"):
        return value
    if not value.startswith("/") or ".." in value.split("/") or len(value) > 4096:
        raise ValueError(f"path {value!r} must be an absolute path without '..'")
    return value


def label_value(value: str) -> str:
    return check_no_nul(value) if "{{" in value else check_label_value(value)  # `{{…}}`: substituted later


def check_items(value: Any, depth: int = 0) -> Any:
    """withItems entries: any JSON, with the size and NUL rules every manifest string has."""
    if isinstance(value, str):
        check_no_nul(value)
        if len(value) > MAX_STRING:
            raise ValueError("an item must not exceed 128 KiB")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_items(key, depth + 1)
            check_items(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_items(item, depth + 1)
    return value


ArgoName = Annotated[str, AfterValidator(_argo_name)]
ParamName = Annotated[str, AfterValidator(_param_name)]
AnyString = Annotated[Arg, BeforeValidator(_any_string)]
Duration = Annotated[str, BeforeValidator(_duration)]
ContainerPath = Annotated[str, AfterValidator(_container_path)]
SequenceBound = Annotated[int | str, PlainValidator(_sequence_bound)]
Seconds = Annotated[int, BeforeValidator(whole_number), Field(ge=1, le=10**9)]


# --- parameters and artifacts -----------------------------------------------------------------------

class ValueFrom(Model):
    """Where an output parameter's value comes from: a file the template wrote, a child's parameter, or an
    expression over the children's outputs (steps/DAG templates)."""

    expression: Arg | None = None
    supplied: Unsupported = None
    json_path: Unsupported = None
    jq_filter: Unsupported = None
    event: Unsupported = None
    config_map_key_ref: KeySelector | None = None  # an input's or argument's (controller.argo_configmaps)
    secret_key_ref: Unsupported = None
    path: ContainerPath | None = None
    parameter: Arg | None = None
    default: AnyString | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ValueFrom:
        given = (self.path, self.parameter, self.expression, self.config_map_key_ref)
        if sum(source is not None for source in given) != 1:
            raise ValueError("exactly one of path, parameter, expression and configMapKeyRef is required")
        return self


class Parameter(Model):
    name: ParamName
    value: AnyString | None = None
    default: AnyString | None = None
    enum: list[AnyString] | None = None
    description: Text | None = None
    global_name: Annotated[str, AfterValidator(_global_name)] | None = None
    value_from: ValueFrom | None = None


class RawArtifact(Model):
    data: Arg


def _archive(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if len(value) != 1 or next(iter(value)) not in ("none", "tar", "zip") or \
            not isinstance(next(iter(value.values())) or {}, dict):
        raise ValueError("must be one of {none: {}}, {tar: {...}}, {zip: {}}")
    kind = next(iter(value))
    sink = warnings_var.get()
    if kind != "none" and sink is not None:
        sink.append(f"Artifact.archive {kind} is not supported by podline and is ignored (artifacts pass "
                    "through the shared directory as plain files)")
    return value


def _reference(value: str) -> str:
    """`from` names another artifact by reference (`{{steps.s.outputs.artifacts.a}}`), never a path: artifacts
    pass only through the workflow's own place on the shared directory."""
    if not re.fullmatch(r"\{\{\s*[A-Za-z0-9_.\-]+\s*\}\}", value):
        raise ValueError(f"{value[:200]!r} must be one reference such as "
                         "'{{steps.NAME.outputs.artifacts.ARTIFACT}}' or '{{tasks.NAME.outputs.artifacts.ARTIFACT}}'")
    return value


class HTTPArtifact(Model):
    """An input artifact fetched from a URL (checked once substituted: http(s), no credentials in it)."""

    headers: Unsupported = None
    auth: Unsupported = None
    url: Arg


class S3Artifact(Model):
    """An input artifact fetched from an S3-compatible store: one object, or every object under `key`."""

    role_arn: Unsupported = Field(default=None, alias="roleARN")
    use_sdk_creds: Unsupported = Field(default=None, alias="useSDKCreds")
    encryption_options: Unsupported = None
    ca_secret: Unsupported = None
    session_token_secret: Unsupported = None
    create_bucket_if_not_present: Unsupported = None
    endpoint: Text | None = None  # host[:port], as Argo takes it; `insecure` means http
    bucket: Arg | None = None  # Argo may take it from its artifact repository; podline needs it (checked there)
    key: Arg
    region: Annotated[str, Field(pattern=r"^[a-z0-9-]{1,40}$")] | None = None
    insecure: bool | None = None
    access_key_secret: KeySelector | None = None
    secret_key_secret: KeySelector | None = None

    @model_validator(mode="after")
    def _both_keys(self) -> S3Artifact:
        if (self.access_key_secret is None) != (self.secret_key_secret is None):
            raise ValueError("give both accessKeySecret and secretKeySecret, or neither (the runner's own "
                             "credentials)")
        return self


class Artifact(Model):
    """An input or output file or directory; its content travels through the context's shared directory, or
    (inputs only) comes from an HTTP server or an S3 store through the node's cache of datasets."""

    s3: S3Artifact | None = None
    http: HTTPArtifact | None = None
    git: RemoteSource = None
    gcs: RemoteSource = None
    oss: RemoteSource = None
    hdfs: RemoteSource = None
    artifactory: RemoteSource = None
    azure: RemoteSource = None
    hf: RemoteSource = None
    plugin: RemoteSource = None
    artifact_gc: Unsupported = Field(default=None, alias="artifactGC")
    global_name: Unsupported = None
    from_expression: Arg | None = None  # a steps/DAG output: an expression choosing a child's artifact
    sub_path: Unsupported = None
    name: ParamName
    path: ContainerPath | None = None
    from_: Annotated[str, AfterValidator(_reference)] | None = Field(default=None, alias="from")
    optional: bool | None = None
    raw: RawArtifact | None = None
    archive: Annotated[dict[str, Any] | None, AfterValidator(_archive)] = None
    mode: int | None = Field(default=None, ge=0, le=0o777)
    IGNORED: ClassVar[frozenset[str]] = frozenset({"recurseMode", "deleted", "archiveLogs"})


class Arguments(Model):
    parameters: list[Parameter] | None = None
    artifacts: list[Artifact] | None = None


Inputs = Outputs = Arguments  # the same two lists: what a template takes, makes, or a caller passes
