"""Remote Dataset sources: what apply accepts and refuses (exact field paths), what the plan carries to the
runner (keys from a Secret; a missing one makes the pipeline wait), and which links and keys an HTTP listing
or a bucket may turn into workspace paths (hypothesis: none outside the input directory)."""

from __future__ import annotations

import base64
import posixpath

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from podline.api.errors import ManifestError
from podline.api.loader import load_text
from podline.plan.pipeline import plan_pipeline
from podline.plan.pod import PlanWaiting
from podline.runtime.remote import RemoteError, _below, _check_rel
from podline.runtime.staging import SourceFile

SOURCE = "d.yaml"


def dataset(spec: str) -> str:
    return f"apiVersion: podline.io/v1alpha1\nkind: Dataset\nmetadata: {{name: d}}\nspec:\n{spec}"


def load(spec: str):  # noqa: ANN201
    [doc] = load_text(dataset(spec), SOURCE)
    return doc.obj


@pytest.mark.parametrize(("source", "kept"), [
    ("s3://my-bucket/run42/", "s3://my-bucket/run42"),
    ("s3://my-bucket", "s3://my-bucket"),
    ("s3://my-bucket/", "s3://my-bucket"),
    ("https://data.example.org/run42/", "https://data.example.org/run42/"),
    ("http://127.0.0.1:8000/file.csv", "http://127.0.0.1:8000/file.csv"),
])
def test_remote_sources_are_accepted(source: str, kept: str) -> None:
    assert load(f"  source: '{source}'\n").spec.source == kept


@pytest.mark.parametrize(("spec", "path", "problem"), [
    ("  source: gs://b/x\n", "spec.source", "gs:// sources are not supported"),
    ("  source: s3://B/x\n", "spec.source", "valid bucket name"),
    ("  source: 'https://user:pw@host/x'\n", "spec.source", "no credentials"),
    ("  source: s3://bkt/x\n  endpoint: 'https://user:pw@host'\n", "spec.endpoint", "without credentials"),
    ("  source: 'https://host/a/../b'\n", "spec.source", "'..' segments"),
    ("  source: 'https://host/a b'\n", "spec.source", "without whitespace"),
    ("  source: 'https://host/d/..%2F..%2Fescaped'\n", "spec.source", "'..' segments"),
    ("  source: 'https://host/d/%2e%2e'\n", "spec.source", "'..' segments"),
    ("  source: 'https://host/d/a%00b'\n", "spec.source", "control characters"),
    ("  source: /data\n  endpoint: http://127.0.0.1:9000\n", "spec.endpoint", "applies to s3:// sources only"),
    ("  source: https://h/x\n  region: eu-west-1\n", "spec.region", "applies to s3:// sources only"),
    ("  source: s3://bkt/x\n  endpoint: ftp://h\n", "spec.endpoint", "must be an http(s):// URL"),
    ("  source: s3://bkt/x\n  accessKeySecret: {name: s, key: a}\n", "spec.secretKeySecret", "go together"),
    ("  source: s3://bkt/x\n  secretKeySecret: {name: s, key: a}\n", "spec.accessKeySecret", "go together"),
    ("  source: s3://bkt/x\n  accessKeySecret: {name: s}\n  secretKeySecret: {name: s, key: b}\n",
     "spec.accessKeySecret.key", "required field is missing"),
])
def test_bad_remote_datasets_name_the_field(spec: str, path: str, problem: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load(spec)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: document 1 (Dataset/d): {path}: "), message
    assert problem in message and "\n" not in message
    assert "pw@" not in message, "credentials are not echoed"


def test_a_local_dataset_dumps_without_the_s3_fields() -> None:
    assert load("  source: /data\n").dump()["spec"] == {"source": "/data", "include": [], "exclude": [],
                                                         "shardBy": "files"}


S3_DATASET = load("  source: s3://bkt/run\n  endpoint: http://127.0.0.1:9000\n  region: eu-west-1\n"
                  "  accessKeySecret: {name: keys, key: id}\n  secretKeySecret: {name: keys, key: secret}\n")
PIPELINE = {"apiVersion": "podline.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": "pl"},
            "spec": {"inputs": [{"dataset": "d", "path": "in"}], "steps": [{"name": "s", "command": ["x"]}]}}


def secret(data: dict[str, str]):  # noqa: ANN201
    text = "apiVersion: v1\nkind: Secret\nmetadata: {name: keys}\ndata:\n" + "".join(
        f"  {k}: {base64.b64encode(v.encode()).decode()}\n" for k, v in data.items())
    return load_text(text, SOURCE)[0].obj


def plan_with(found: dict):  # noqa: ANN201
    return plan_pipeline(PIPELINE, "uid", lambda kind, ns, name: found.get(kind), generation=1, dirs={},
                         shard_dir="/s/{shard}", retries=0)


def test_the_plan_carries_the_store_and_the_keys_from_the_secret() -> None:
    plan = plan_with({"Dataset": S3_DATASET, "Secret": secret({"id": "AKIA1", "secret": "p+q/r\n"})})
    assert plan["inputs"] == [{"path": "in", "dataset": {
        "name": "d", "source": "s3://bkt/run", "include": [], "exclude": [], "shardBy": "files",
        "s3": {"endpoint": "http://127.0.0.1:9000", "region": "eu-west-1"},
        "credentials": {"key": "AKIA1", "secret": "p+q/r"}}}]


@pytest.mark.parametrize(("found", "message"), [
    ({}, 'couldn\'t find secret "keys"'),
    ({"Secret": "only-id"}, 'couldn\'t find key secret in secret "keys"'),
])
def test_a_missing_secret_or_key_makes_the_pipeline_wait(found: dict, message: str) -> None:
    found = {k: secret({"id": "AKIA1"}) if v == "only-id" else v for k, v in found.items()}
    with pytest.raises(PlanWaiting) as caught:
        plan_with({"Dataset": S3_DATASET, **found})
    assert caught.value.args == ("CreateContainerConfigError", message) or message in str(caught.value)


BASE = "http://h:8000/data/"


@given(st.text(alphabet="ab./%2e?#:@ \\", max_size=30))
@example("../x")
@example("/data/../etc/passwd")
@example("%2e%2e/secret")
@example("sub/%2E%2E/%2e%2e/x")
@example("mailto:x@y")
def test_a_link_becomes_a_relative_path_inside_the_source_or_nothing(href: str) -> None:
    from urllib.parse import urljoin
    try:
        rel = _below(BASE, urljoin(BASE, href))
    except RemoteError:
        return  # refused outright: nothing is written
    if rel is None:
        return
    assert rel and not rel.startswith("/") and ".." not in rel.split("/") and "" not in rel.split("/")
    assert posixpath.normpath(posixpath.join("/ws/in", rel)).startswith("/ws/in/")


@pytest.mark.parametrize("key", ["../x", "a/../../x", "a//b", "./a", "a/.", "", "a\0b"])
def test_an_object_key_that_is_not_a_plain_relative_path_is_refused(key: str) -> None:
    with pytest.raises(RemoteError, match="does not name a file below the source"):
        _check_rel(key, f"s3://b/{key}")


def test_the_cache_quick_check_of_a_remote_file_is_its_etag_and_last_modified() -> None:
    assert SourceFile("a", "s3://b/a", 1, 5, etag='"abc"').stamp == '"abc"|t5'
    assert SourceFile("a", "s3://b/a", 1, 0, etag='"abc"').stamp == '"abc"'
    assert SourceFile("a", "https://h/a", 1, 5).stamp == "t5"
    assert SourceFile("a", "https://h/a", 1, 0).stamp == ""  # neither: never indexed
    assert SourceFile("a", "/data/a", 1, 5, ctime=7).stamp == "5/7"  # a local file: mtime and ctime


def test_only_an_s3_strong_etag_vouches_for_the_content_alone() -> None:
    """A web server's ETag may be the mtime in seconds and the size (nginx) or weak: such a file changed
    within the last seconds is not indexed (the racy rule applies as to a local mtime)."""
    assert SourceFile("a", "s3://b/a", 1, 5, etag='"d41d8"').content_etag
    assert not SourceFile("a", "s3://b/a", 1, 5, etag='W/"d41d8"').content_etag
    assert not SourceFile("a", "https://h/a", 1, 5, etag='"5f1a-3"').content_etag
    assert not SourceFile("a", "s3://b/a", 1, 5).content_etag


def test_a_later_look_is_the_same_version_by_etag_when_there_is_one() -> None:
    listed = SourceFile("a", "s3://b/a", 3, 1_700_000_000_437_000_000, etag='"e1"')
    assert listed.same_version(3, '"e1"', 1_700_000_000_000_000_000)  # HEAD gives whole seconds (MinIO, RGW)
    assert not listed.same_version(3, '"e2"', listed.mtime) and not listed.same_version(4, '"e1"', listed.mtime)
    plain = SourceFile("a", "https://h/a", 3, 10)
    assert plain.same_version(3, "", 10) and not plain.same_version(3, "", 11)
