"""`podline.io/v1alpha1 Dataset`: files on a shared filesystem that pipelines stage next to the compute.

A Pipeline input `{dataset: NAME, path: in}` names one; each shard gets its slice of the dataset's files
(`shardBy: files`, round robin over the sorted relative paths) or all of them (`shardBy: none`), under the
same relative paths as in the source, through a node-local content-addressed cache (`runtime.staging`).

`include`/`exclude` are globs on a file's path relative to `source`: a pattern without `/` matches the file
name in any directory (`*.root`), one with `/` the whole relative path (`run1/*.root`; `*` also crosses `/`).
No include means every file; exclude wins over include.

Sources are local paths (a plain absolute path, or a `file://` URL: percent-decoded, its host empty or
`localhost`), which is what a shared or parallel filesystem (Lustre, GPFS, the sshfs mount of the tests) is
to the nodes, or URLs read through fsspec
(`runtime.remote`): `s3://bucket[/prefix]` (an object, or every object under the prefix) and
`http(s)://…` (a file, or, for a URL ending in `/`, the files its index page links to, recursively).
An S3-compatible store other than AWS is named by `endpoint` (Argo's S3 artifact fields: `endpoint`,
`region`, `accessKeySecret`/`secretKeySecret` naming keys of a v1 Secret); without the secrets, the
runner's own AWS credentials (environment, `~/.aws`) apply. Other schemes are refused at apply (exit 2),
rather than accepted and failed later.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, Field
from pydantic.alias_generators import to_camel

from podline.api.base import Model, Resource
from podline.api.core import KeySelector
from podline.api.errors import InvalidObject

MAX_PATTERNS = 100
REMOTE_SCHEMES = ("s3://", "http://", "https://")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def is_remote(source: str) -> bool:
    return source.startswith(REMOTE_SCHEMES)


def dataset_source(value: str) -> str:
    """A local absolute path (a `file://` URL is decoded to one: `file_url_path`), or an s3:// or http(s)://
    URL."""
    if is_remote(value):
        return _remote_source(value)
    if "://" in value and not value.startswith("file://"):
        scheme = value.split("://", 1)[0]
        raise ValueError(f"{scheme}:// sources are not supported; use a path on a shared filesystem, file://, "
                         "s3:// or http(s)://")
    if _control(value):  # before parsing: urlsplit silently drops tabs and line breaks
        raise ValueError(f"{value!r} must be a path without control characters or line breaks")
    path = file_url_path(value)
    if not path.startswith("/") or "\0" in path or ".." in path.split("/"):
        raise ValueError(f"{value!r} must be an absolute path (or file:// URL) without '..'")
    if _control(path):  # as a URL's are refused (a file:// URL's %0A, once decoded)
        raise ValueError(f"{value!r} must be a path without control characters or line breaks")
    return path.rstrip("/") or "/"


def _control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text)


def file_url_path(value: str) -> str:
    """The local path a `file://` URL names, as RFC 8089 reads it: percent-decoded (`my%20ds` is `my ds`),
    with no host or `localhost`; any other host, and a `?` or `#` (which would end the path), are refused.
    A value that is not a file:// URL is returned as it is (a plain path)."""
    if not value.startswith("file://"):
        return value
    url = urlsplit(value)
    if url.netloc not in ("", "localhost"):
        raise ValueError(f"file:// URL names the host {url.hostname!r}: only a local path can be a source "
                         "(file:///PATH or file://localhost/PATH)")
    if url.query or url.fragment or "?" in value or "#" in value:
        raise ValueError("a '?' or '#' in a file:// URL ends its path: percent-encode them (%3F, %23)")
    return unquote(url.path)


def _remote_source(value: str) -> str:
    scheme, rest = value.split("://", 1)
    decoded = unquote(rest)
    if any(c in decoded for c in "\0\r\n\t ") or ".." in rest.split("/") or ".." in decoded.split("/"):
        raise ValueError(f"{value!r} must be a URL without whitespace, control characters or '..' segments")
    if scheme == "s3":
        bucket = rest.split("/", 1)[0]
        if not BUCKET.fullmatch(bucket):
            raise ValueError(f"{value!r} must be s3://BUCKET[/PREFIX] with a valid bucket name")
        return value.rstrip("/") if rest.rstrip("/") != bucket else f"s3://{bucket}"
    host = rest.split("/", 1)[0]
    if not host or "@" in host:
        raise ValueError("must name a host, and no credentials: they would be logged (the URL is not repeated "
                         "here for that reason)")
    return value


def _endpoint(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/@]+(/[^\s]*)?", value):
        raise ValueError("must be an http(s):// URL without credentials (the value is not repeated here: it may "
                         "hold some)")
    return value.rstrip("/")


def _pattern(value: str) -> str:
    if not value or "\0" in value or len(value) > 1024:
        raise ValueError(f"{value!r} is not a usable glob (empty, NUL or over 1024 characters)")
    return value


Pattern = Annotated[str, AfterValidator(_pattern)]


class DatasetSpec(Model):
    source: Annotated[str, AfterValidator(dataset_source)]
    include: list[Pattern] = Field(default_factory=list, max_length=MAX_PATTERNS)
    exclude: list[Pattern] = Field(default_factory=list, max_length=MAX_PATTERNS)
    shard_by: Literal["files", "none"] = "files"
    endpoint: Annotated[str, AfterValidator(_endpoint)] | None = None  # s3: an S3-compatible store
    region: Annotated[str, Field(pattern=r"^[a-z0-9-]{1,40}$")] | None = None
    access_key_secret: KeySelector | None = None
    secret_key_secret: KeySelector | None = None


class Dataset(Resource):
    api_version: Literal["podline.io/v1alpha1"]
    kind: Literal["Dataset"]
    spec: DatasetSpec



def check_dataset(obj: Dataset) -> None:
    """The S3 fields need an s3:// source, and the two key secrets go together."""
    spec = obj.spec
    for field in ("endpoint", "region", "access_key_secret", "secret_key_secret"):
        if getattr(spec, field) is not None and not spec.source.startswith("s3://"):
            raise InvalidObject(f"spec.{to_camel(field)}", "applies to s3:// sources only")
    if (spec.access_key_secret is None) != (spec.secret_key_secret is None):
        missing = "secretKeySecret" if spec.secret_key_secret is None else "accessKeySecret"
        raise InvalidObject(f"spec.{missing}", "required with the other key secret (they go together)")
