"""Image references: every transport parses to the same Reference the cache and runtimes use; bad names fail clearly."""

from __future__ import annotations

import base64
import json

import pytest

from podline.images import INVALID_NAME, ImageError, parse_reference
from podline.images.auth import credentials, parse_challenge
from podline.images.model import ImageConfig

HEX = "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", ""),
        ("docker://busybox:1.36", "docker.io", "library/busybox", "1.36", ""),
        ("user/app", "docker.io", "user/app", "latest", ""),
        ("index.docker.io/user/app:v1", "docker.io", "user/app", "v1", ""),
        ("127.0.0.1:5000/tools:1.0", "127.0.0.1:5000", "tools", "1.0", ""),
        ("localhost/a/b/c", "localhost", "a/b/c", "latest", ""),
        ("localhost:5000/podline-test/busybox:v_1.2-rc", "localhost:5000", "podline-test/busybox", "v_1.2-rc", ""),
        (f"127.0.0.1:5000/tools@sha256:{HEX}", "127.0.0.1:5000", "tools", "", f"sha256:{HEX}"),
        (f"reg.example.org/a:t@sha256:{HEX}", "reg.example.org", "a", "t", f"sha256:{HEX}"),
        ("[::1]:5000/x/y:z", "[::1]:5000", "x/y", "z", ""),
        ("docker://127.0.0.1:5000/a__b.c-d", "127.0.0.1:5000", "a__b.c-d", "latest", ""),
    ],
)
def test_registry_references(text: str, registry: str, repository: str, tag: str, digest: str) -> None:
    ref = parse_reference(text)
    assert (ref.transport, ref.registry, ref.repository, ref.tag, ref.digest) == (
        "docker", registry, repository, tag, digest)
    assert parse_reference(str(ref)) == ref


def test_docker_hub_api_host_and_plain_http() -> None:
    assert parse_reference("busybox").api_host == "registry-1.docker.io"
    assert parse_reference("127.0.0.1:5000/a").plain_http()
    assert parse_reference("localhost:5000/a").plain_http()
    assert parse_reference("[::1]:5000/a").plain_http()
    assert not parse_reference("reg.example.org/a").plain_http()
    assert parse_reference("reg.example.org:8443/a").plain_http(["reg.example.org:8443"])


@pytest.mark.parametrize(
    ("text", "transport", "path", "tag"),
    [
        ("oci:/images/layout", "oci", "/images/layout", ""),
        ("oci:/images/layout:v1", "oci", "/images/layout", "v1"),
        ("oci-archive:/images/tools.tar", "oci-archive", "/images/tools.tar", ""),
        ("oci-archive:/images/tools.tar:latest", "oci-archive", "/images/tools.tar", "latest"),
        ("docker-archive:/images/saved.tar", "docker-archive", "/images/saved.tar", ""),
        ("dir:/srv/rootfs", "dir", "/srv/rootfs", ""),
        ("/srv/rootfs", "dir", "/srv/rootfs", ""),
    ],
)
def test_local_references(text: str, transport: str, path: str, tag: str) -> None:
    ref = parse_reference(text)
    assert (ref.transport, ref.path, ref.tag) == (transport, path, tag)


@pytest.mark.parametrize(
    "text",
    [
        "", " busybox", "busybox ", "Busybox", "bad name", "a//b", "a/", "-a", "a:", "a:-tag", "a:" + "t" * 129,
        "a@sha256:abc", f"a@sha512:{HEX}", f"a@sha256:{HEX.upper()}", "127.0.0.1:99999/a", "bad_host:5000/a",
        "oci:relative/dir", "oci:/a/../b", "dir:rel", "x" * 600, "a\nb",
    ],
)
def test_bad_names_are_invalid_image_name(text: str) -> None:
    with pytest.raises(ImageError) as caught:
        parse_reference(text)
    assert caught.value.reason == INVALID_NAME
    assert not caught.value.transient
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1:5000/app:t\u00e4g", "127.0.0.1:5000/\u00e4pp:1", "docker://127.0.0.1:5000/app:t\u00e4g",
        "r\u00e9gistry.example.org/app:1", "busybox:\uff11", "busybox:v\u0661", "busybox:\u01c5",
        "\u00e9/app", "app\u0130", "busybox:latest\u00a0", f"busybox@sha256:{HEX[:-1]}\u0661",
        "oci:/images/layout:t\u00e4g", "oci-archive:/images/a.tar:\u0661",
    ],
)
def test_non_ascii_names_are_invalid_image_name(text: str) -> None:
    with pytest.raises(ImageError) as caught:
        parse_reference(text)
    assert caught.value.reason == INVALID_NAME and not caught.value.transient
    assert "\n" not in str(caught.value)


def test_non_ascii_paths_of_local_images_are_fine() -> None:
    ref = parse_reference("oci:/images/caf\u00e9/layout:v1")
    assert (ref.transport, ref.path, ref.tag) == ("oci", "/images/caf\u00e9/layout", "v1")
    assert parse_reference("/srv/r\u00f6\u00f6tfs").path == "/srv/r\u00f6\u00f6tfs"


def test_challenge_parameter_names_are_ascii() -> None:
    assert parse_challenge('Bearer r\u00e9alm="x",realm="y"') == ("bearer", {"alm": "x", "realm": "y"})


def test_sif_needs_apptainer() -> None:
    with pytest.raises(ImageError, match="SIF images need the apptainer runtime"):
        parse_reference("/images/tools.sif")


def test_image_config_from_blob() -> None:
    raw = json.dumps({"config": {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"], "Env": ["A=1"],
                                 "WorkingDir": "/w", "User": "1000:1000"}}).encode()
    expected = ImageConfig(("/bin/sh", "-c"), ("echo hi",), ("A=1",), "/w", "1000:1000")
    assert ImageConfig.from_image_config(raw) == expected
    assert ImageConfig.from_image_config(b'{"config": null}') == ImageConfig()
    assert ImageConfig.from_image_config(b"{}") == ImageConfig()


def test_auth_file_lookup(tmp_path, monkeypatch) -> None:
    encoded = base64.b64encode(b"alice:s3:cret").decode()
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"auths": {"http://127.0.0.1:5000/v2/": {"auth": encoded},
                                          "https://index.docker.io/v1/": {"auth": base64.b64encode(b"b:c").decode()}}}))
    assert credentials(auth, "127.0.0.1:5000", "img") == ("alice", "s3:cret")
    assert credentials(auth, "docker.io", "img") == ("b", "c")
    assert credentials(auth, "127.0.0.1:5001", "img") is None
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    assert credentials(None, "127.0.0.1:5000", "img") is None
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    assert credentials(None, "127.0.0.1:5000", "img") == ("alice", "s3:cret")
    auth.write_text("{not json")
    with pytest.raises(ImageError, match="not JSON"):
        credentials(auth, "127.0.0.1:5000", "img")


def test_bearer_challenge_parsing() -> None:
    scheme, params = parse_challenge('Bearer realm="http://127.0.0.1:1/token",service="reg",'
                                     'scope="repository:a/b:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "http://127.0.0.1:1/token", "service": "reg", "scope": "repository:a/b:pull,push"}
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})
