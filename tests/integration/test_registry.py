"""prepare() against a real registry: Debian's docker-registry, filled with skopeo from layouts built offline.

The shared registry of scripts/registry-up.sh (127.0.0.1:5000) serves the plain pulls. Tests that stop a
registry or need authentication start their own instance of the same binary on a free port with a temp
config: anonymous, `auth: htpasswd` (bcrypt entry from `htpasswd -B`), and `auth: token`, where the token
realm is a small HTTP server in this file issuing RS256 JWTs (signed with `openssl`) whose certificate is
the registry's rootcertbundle - the registry verifies them itself, as it would Docker Hub's tokens.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from podline.images import ImageError, prepare
from tests import imagebuild as ib

SHARED = "127.0.0.1:5000"
REPO = "podline-test/busybox"
SERVICE, ISSUER = "podline-test-registry", "podline-test-issuer"


def answers(addr: str) -> bool:
    try:
        urllib.request.urlopen(f"http://{addr}/v2/", timeout=2).close()
        return True
    except urllib.error.HTTPError:
        return True  # 401 from an auth-enabled registry: it is up
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """A private docker-registry on a free port with its own storage; stop() ends it."""

    def __init__(self, workdir: Path, auth: str = "", port: int | None = None) -> None:
        """`port`: the port of an earlier one with the same workdir, to start it again (its images kept)."""
        if not shutil.which("docker-registry"):
            pytest.skip("docker-registry is not installed (scripts/registry-up.sh installs it)")
        self.port = port or free_port()
        self.addr = f"127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "config.yml"
        config.write_text(f"version: 0.1\nlog: {{level: error}}\n"
                          f"storage:\n  filesystem: {{rootdirectory: {workdir}/store}}\n"
                          f"http: {{addr: '{self.addr}'}}\n{auth}")
        self.log = open(workdir / "registry.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 15
        while not answers(self.addr):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.skip(f"docker-registry could not start: {(workdir / 'registry.log').read_text()[-500:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.log.close()


def push(layout: Path, tag: str, dest: str, *creds: str) -> None:
    if not shutil.which("skopeo"):
        pytest.skip("skopeo is not installed (scripts/registry-up.sh installs it)")
    extra = ["--dest-creds", creds[0]] if creds else []
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", *extra, f"oci:{layout}:{tag}",
                    f"docker://{dest}"], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry") / "layout"
    ib.busybox_image(path, tag="v1", entrypoint=["/bin/sh", "-c"], cmd=["echo hello"], working_dir="/tmp",
                     env=["PATH=/bin", "GREETING=hi"])
    ib.busybox_image(path, tag="v2", cmd=["echo", "v2"], extra=[ib.Layer().file("etc/version", b"2\n")])
    return path


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The shared registry when registry-up.sh started it, else a private one for this module."""
    if answers(SHARED):
        yield SHARED
        return
    private = Registry(tmp_path_factory.mktemp("shared-registry"))
    yield private.addr
    private.stop()


def test_pull_by_tag_and_by_digest(shared: str, layout: Path, tmp_path: Path) -> None:
    tag = f"t{uuid.uuid4().hex[:10]}"
    push(layout, "v1", f"{shared}/{REPO}:{tag}")
    by_tag = prepare(f"{shared}/{REPO}:{tag}", "IfNotPresent", tmp_path / "a")
    assert by_tag.pulled and (by_tag.rootfs / "bin/busybox").is_file()
    assert os.readlink(by_tag.rootfs / "bin/sh") == "/bin/busybox"
    assert by_tag.config.entrypoint == ("/bin/sh", "-c") and by_tag.config.cmd == ("echo hello",)
    assert by_tag.config.env == ("PATH=/bin", "GREETING=hi") and by_tag.config.working_dir == "/tmp"
    by_digest = prepare(f"docker://{shared}/{REPO}@{by_tag.digest}", "IfNotPresent", tmp_path / "b")
    assert by_digest.pulled and by_digest.digest == by_tag.digest
    assert ib.tree(by_digest.rootfs) == ib.tree(by_tag.rootfs)
    again = prepare(f"{shared}/{REPO}@{by_tag.digest}", "IfNotPresent", tmp_path / "a")
    assert (again.pulled, again.rootfs) == (False, by_tag.rootfs)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ImageError, match="manifest unknown \\(404\\)"):
        prepare(f"{shared}/{REPO}@{wrong}", "IfNotPresent", tmp_path / "a")


def test_missing_tag_and_unreachable_registry(shared: str, tmp_path: Path) -> None:
    with pytest.raises(ImageError) as missing:
        prepare(f"{shared}/{REPO}:nope", "IfNotPresent", tmp_path)
    assert str(missing.value) == f"{shared}/{REPO}:nope: manifest unknown (404)"
    assert not missing.value.transient
    port = free_port()
    with pytest.raises(ImageError) as unreachable:
        prepare(f"127.0.0.1:{port}/x:1", "IfNotPresent", tmp_path)
    assert str(unreachable.value) == f"127.0.0.1:{port}/x:1: registry unreachable: connection refused"
    assert unreachable.value.transient


def test_cache_outlives_the_registry_and_always_rechecks(layout: Path, tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    image = f"{registry.addr}/{REPO}:moving"
    try:
        push(layout, "v1", image)
        first = prepare(image, "IfNotPresent", tmp_path / "cache")
        assert first.pulled
        assert not prepare(image, "Always", tmp_path / "cache").pulled  # digest unchanged: cache reused
        push(layout, "v2", image)  # the tag moves
        assert prepare(image, "IfNotPresent", tmp_path / "cache").digest == first.digest  # no network
        moved = prepare(image, "Always", tmp_path / "cache")
        assert moved.pulled and moved.digest != first.digest and (moved.rootfs / "etc/version").read_text() == "2\n"
    finally:
        registry.stop()
    cached = prepare(image, "IfNotPresent", tmp_path / "cache")
    assert (cached.pulled, cached.digest) == (False, moved.digest)
    assert prepare(image, "Never", tmp_path / "cache").digest == moved.digest
    with pytest.raises(ImageError, match="registry unreachable: connection refused") as caught:
        prepare(image, "Always", tmp_path / "cache")
    assert caught.value.transient


def auth_file(path: Path, addr: str, user: str, password: str) -> Path:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {addr: {"auth": encoded}}}))
    return path


def test_basic_auth_with_htpasswd(layout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not shutil.which("htpasswd"):
        pytest.skip("htpasswd is not installed (apache2-utils; scripts/registry-up.sh installs it)")
    entry = subprocess.run(["htpasswd", "-Bbn", "alice", "wonderland"], check=True, capture_output=True, text=True)
    (tmp_path / "htpasswd").write_text(entry.stdout.strip() + "\n")
    registry = Registry(tmp_path / "registry", f"auth:\n  htpasswd: {{realm: podline, path: {tmp_path}/htpasswd}}\n")
    try:
        image = f"{registry.addr}/{REPO}:basic"
        push(layout, "v1", image, "alice:wonderland")
        monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
        with pytest.raises(ImageError, match=r"unauthorized \(401\)") as anonymous:
            prepare(image, "IfNotPresent", tmp_path / "cache")
        assert not anonymous.value.transient
        with pytest.raises(ImageError, match=r"unauthorized \(401\)"):
            prepare(image, "IfNotPresent", tmp_path / "cache",
                    auth_file=auth_file(tmp_path / "wrong.json", registry.addr, "alice", "nope"))
        good = auth_file(tmp_path / "auth.json", registry.addr, "alice", "wonderland")
        assert prepare(image, "IfNotPresent", tmp_path / "cache", auth_file=good).pulled
        monkeypatch.setenv("REGISTRY_AUTH_FILE", str(good))
        assert not prepare(image, "Always", tmp_path / "cache").pulled
    finally:
        registry.stop()


class TokenServer:
    """The token realm: checks basic credentials, answers with a JWT the registry verifies (x5c + rootcertbundle)."""

    def __init__(self, workdir: Path, user: str, password: str) -> None:
        self.key, self.cert = workdir / "token.key", workdir / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "2", "-subj", "/CN=podline-token-issuer"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                query = parse_qs(urlparse(self.path).query)
                granted = self.headers.get("Authorization") == server.expected
                server.requests.append({"query": query, "granted": granted})
                if not granted:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": server.jwt(query.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def jwt(self, scopes: list[str]) -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [self.x5c]}
        claims = {"iss": ISSUER, "sub": "alice", "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=signing_input.encode(),
                                   check=True, capture_output=True).stdout
        return f"{signing_input}.{b64(signature)}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_bearer_token_auth(layout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed (scripts/registry-up.sh installs it)")
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    tokens = TokenServer(tmp_path, "alice", "wonderland")
    auth = (f"auth:\n  token:\n    realm: {tokens.realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
            f"    rootcertbundle: {tokens.cert}\n")
    registry = Registry(tmp_path / "registry", auth)
    try:
        image = f"{registry.addr}/{REPO}:token"
        push(layout, "v1", image, "alice:wonderland")
        with pytest.raises(ImageError, match=r"token server .* refused \(401") as anonymous:
            prepare(image, "IfNotPresent", tmp_path / "cache")
        assert not anonymous.value.transient
        tokens.requests.clear()
        good = auth_file(tmp_path / "auth.json", registry.addr, "alice", "wonderland")
        pulled = prepare(image, "IfNotPresent", tmp_path / "cache", auth_file=good)
        assert pulled.pulled and (pulled.rootfs / "bin/busybox").is_file()
        assert tokens.requests and all(r["granted"] for r in tokens.requests)
        assert tokens.requests[0]["query"] == {"service": [SERVICE], "scope": [f"repository:{REPO}:pull"]}
    finally:
        registry.stop()
        tokens.stop()


class Stub:
    """A tiny HTTP server on `host` answering with `respond(method, path, headers) -> (code, headers, body)`;
    every request is recorded as (method, path, headers). For hostile behaviour no real registry produces."""

    def __init__(self, host: str, respond) -> None:  # noqa: ANN001 - a callable
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                headers = dict(self.headers.items())
                stub.requests.append((self.command, self.path, headers))
                code, extra, body = respond(self.command, self.path, headers)
                self.send_response(code)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = _answer  # noqa: N815 - http.server's names

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.addr = f"{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _can_bind(host: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


def basic_registry(layout: Path, tag: str, creds: str, blob_answer) -> Stub:  # noqa: ANN001 - a callable
    """A Basic-auth 'registry' on 127.0.0.1 serving `tag` of `layout`; blob GETs are answered by blob_answer."""
    index = json.loads((layout / "index.json").read_text())
    digest = next(m["digest"] for m in index["manifests"]
                  if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
    manifest = ib.layout_blob(layout, digest).read_bytes()
    expected = "Basic " + base64.b64encode(creds.encode()).decode()

    def respond(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if headers.get("Authorization") != expected:
            return 401, {"WWW-Authenticate": 'Basic realm="stub"'}, b""
        if "/manifests/" in path:
            return 200, {"Content-Type": ib.OCI_MANIFEST, "Docker-Content-Digest": digest}, manifest
        if "/blobs/" in path:
            return blob_answer(path.rsplit("/", 1)[1])
        return 404, {}, b""

    return Stub("127.0.0.1", respond)


def test_a_401_from_a_redirect_target_gets_no_credentials(layout: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    if not _can_bind("127.0.0.2"):
        pytest.skip("127.0.0.2 is not a usable loopback address here")
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)

    def foreign(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/token"):
            return 200, {"Content-Type": "application/json"}, b'{"token": "from-the-foreign-host"}'
        return 401, {"WWW-Authenticate": f'Bearer realm="http://{storage.addr}/token",service="evil"'}, b""

    storage = Stub("127.0.0.2", foreign)
    registry = basic_registry(layout, "v1", "alice:wonderland",
                              lambda digest: (307, {"Location": f"http://{storage.addr}/blobs/{digest}"}, b""))
    try:
        image = f"{registry.addr}/{REPO}:redirected"
        good = auth_file(tmp_path / "auth.json", registry.addr, "alice", "wonderland")
        with pytest.raises(ImageError) as caught:
            prepare(image, "IfNotPresent", tmp_path / "cache", auth_file=good)
        assert not [path for _, path, headers in storage.requests if "Authorization" in headers]  # no credentials
        assert storage.requests and all(path.startswith("/blobs/") for _, path, _ in storage.requests)  # no token
        message = str(caught.value)
        assert message.startswith(f"{image}: blob sha256:") and "\n" not in message
        assert f"{storage.addr}, where the registry {registry.addr} redirected, answered 401" in message
        assert not caught.value.transient
        assert any("Authorization" in headers for _, _, headers in registry.requests)  # the registry's own did
        assert all(h["Authorization"].startswith("Basic ") for _, _, h in registry.requests if "Authorization" in h)
    finally:
        registry.stop()
        storage.stop()


def test_redirects_only_to_http_urls(layout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    for target in ("ftp://127.0.0.1:9/blob", "file:///etc/passwd"):
        registry = basic_registry(layout, "v1", "alice:wonderland", lambda _d, t=target: (302, {"Location": t}, b""))
        try:
            image = f"{registry.addr}/{REPO}:elsewhere"
            good = auth_file(tmp_path / "auth.json", registry.addr, "alice", "wonderland")
            with pytest.raises(ImageError, match=f"refusing to follow a redirect to '{target}'") as caught:
                prepare(image, "IfNotPresent", tmp_path / "cache", auth_file=good)
            assert not caught.value.transient
        finally:
            registry.stop()


def test_token_realm_must_be_http_and_https_for_https_registries(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    (tmp_path / "secret").write_text("{}")
    for realm in (f"file://{tmp_path}/secret", "ftp://127.0.0.1:9/token", "data:,x", "/token"):
        challenge = f'Bearer realm="{realm}",service="s"'
        stub = Stub("127.0.0.1", lambda *_a, c=challenge: (401, {"WWW-Authenticate": c}, b""))
        try:
            with pytest.raises(ImageError, match="refusing the token realm .*: not an http\\(s\\) URL") as caught:
                prepare(f"{stub.addr}/{REPO}:x", "IfNotPresent", tmp_path / "cache")
            assert not caught.value.transient
        finally:
            stub.stop()
    # over https (any non-loopback registry) the realm must be https too; checked without a TLS server
    from podline.images.reference import parse_reference
    from podline.images.registry import Registry as Client

    client = Client(parse_reference("registry.example.org/a:b"), "registry.example.org/a:b")
    with pytest.raises(ImageError, match="a registry spoken to over https must have an https token realm"):
        client._authenticate('Bearer realm="http://auth.example.org/token",service="s"')
    plain = Client(parse_reference("registry.example.org/a:b"), "x", insecure=["registry.example.org"])
    with pytest.raises(ImageError, match="token server http://127.0.0.1:9/token unreachable"):
        plain._authenticate('Bearer realm="http://127.0.0.1:9/token",service="s"')


def test_blobs_read_whole_are_capped(tmp_path: Path) -> None:
    """A config without a size in its descriptor is read up to 16 MiB, a declared size is believed only up to
    16 MiB, a manifest up to 4 MiB; a malformed size is an error (a stub registry: real ones check sizes)."""
    blobs: dict[str, bytes] = {}
    manifests: dict[str, bytes] = {}

    def put(data: bytes) -> str:
        blobs[ib.sha256(data)] = data
        return ib.sha256(data)

    layer = gzip.compress(ib.Layer().file("f", b"x").tar(), mtime=0)
    layer_desc = {"mediaType": ib.OCI_LAYER_GZIP, "digest": put(layer), "size": len(layer)}
    big_config = json.dumps({"config": {"Cmd": ["sh"]}, "pad": "x" * (17 << 20)}).encode()
    small_config = json.dumps({"config": {"Cmd": ["sh"]}}).encode()

    def manifest(tag: str, config: bytes, size: object = None, pad: int = 0) -> None:
        desc: dict[str, object] = {"mediaType": ib.OCI_CONFIG, "digest": put(config)}
        if size is not None:
            desc["size"] = size
        doc = {"schemaVersion": 2, "mediaType": ib.OCI_MANIFEST, "config": desc, "layers": [layer_desc]}
        if pad:
            doc["annotations"] = {"pad": "x" * pad}
        manifests[tag] = json.dumps(doc).encode()

    manifest("nosize", big_config)
    manifest("declared", big_config, len(big_config))
    manifest("fine", small_config)  # no size, but small: read
    manifest("huge", small_config, len(small_config), pad=5 << 20)
    manifest("word", small_config, "12")

    def respond(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        name = path.rsplit("/", 1)[1]
        if "/manifests/" in path and name in manifests:
            return 200, {"Content-Type": ib.OCI_MANIFEST}, manifests[name]
        if "/blobs/" in path and name in blobs:
            return 200, {}, blobs[name]
        return 404, {}, b""

    stub = Stub("127.0.0.1", respond)
    try:
        image = f"{stub.addr}/{REPO}"
        assert (prepare(f"{image}:fine", "IfNotPresent", tmp_path / "cache").rootfs / "f").is_file()
        expected = {
            "nosize": "(no size in the manifest) is larger than 16777216 bytes",
            "declared": f"its descriptor says {len(big_config)} bytes, more than the 16777216",
            "huge": "refusing manifest huge: larger than 4194304 bytes",
            "word": "malformed descriptor in manifest: size '12'",
        }
        for tag, problem in expected.items():
            with pytest.raises(ImageError) as caught:
                prepare(f"{image}:{tag}", "IfNotPresent", tmp_path / "cache")
            assert problem in str(caught.value) and str(caught.value).startswith(f"{image}:{tag}: ")
            assert not caught.value.transient
        served = [path for _, path, _ in stub.requests if path.endswith(ib.sha256(big_config))]
        assert len(served) == 1  # the declared 17 MiB config is never fetched; the unsized one once, and cut short
    finally:
        stub.stop()
