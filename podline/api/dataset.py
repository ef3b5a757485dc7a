"""`podline.io/v1alpha1 Dataset`: files on a shared filesystem that pipelines stage next to the compute.

A Pipeline input `{dataset: NAME, path: in}` names one; each shard gets its slice of the dataset's files
(`shardBy: files`, round robin over the sorted relative paths) or all of them (`shardBy: none`), under the
same relative paths as in the source, through a node-local content-addressed cache (`runtime.staging`).

`include`/`exclude` are globs on a file's path relative to `source`: a pattern without `/` matches the file
name in any directory (`*.root`), one with `/` the whole relative path (`run1/*.root`; `*` also crosses `/`).
No include means every file; exclude wins over include.

Sources are local paths (a plain absolute path or `file://`), which is what a shared or parallel filesystem
(Lustre, GPFS, the sshfs mount of the tests) is to the nodes. Object stores and HTTP are not available yet
and are refused at apply (exit 2), rather than accepted and failed later.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from podline.api.base import Model, Resource

MAX_PATTERNS = 100
REMOTE_SCHEMES = ("s3://", "gs://", "http://", "https://", "sftp://", "ssh://")


def dataset_source(value: str) -> str:
    """A local absolute path; `file://` is accepted and removed."""
    if value.startswith(REMOTE_SCHEMES) or ("://" in value and not value.startswith("file://")):
        scheme = value.split("://", 1)[0]
        raise ValueError(f"{scheme}:// sources are not available yet; use a path on a shared filesystem "
                         "(or file://)")
    path = value.removeprefix("file://")
    if not path.startswith("/") or "\0" in path or ".." in path.split("/"):
        raise ValueError(f"{value!r} must be an absolute path (or file:// URL) without '..'")
    return path.rstrip("/") or "/"


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


class Dataset(Resource):
    api_version: Literal["podline.io/v1alpha1"]
    kind: Literal["Dataset"]
    spec: DatasetSpec
