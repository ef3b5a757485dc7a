"""Datasets behind a URL: `s3://` against an S3 server (moto's standalone server, spoken to over HTTP by
s3fs as to any S3-compatible store; no S3 implementation runs on these machines otherwise) and `http://`
against a real web server (Python's http.server and its directory listings).

The S3 pipeline runs end to end on the local backend: its keys come from a v1 Secret and reach the runner
through the plan only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podline.runtime.staging import StagingError, stage_dataset
from tests.conftest import Cli

boto3 = pytest.importorskip("boto3", reason="boto3 (with moto) is in the test extras: pip install -e '.[test]'")
KEY, SECRET = "AKIAPODLINETEST", "s3cr3t/with+chars"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served")


def serve(argv: list[str], port: int, log: Path, cwd: Path | None = None) -> Iterator[str]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"{argv[:3]} did not start: {log.read_text(errors='replace')[-500:]}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    yield from serve([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port, log)


@pytest.fixture(scope="module")
def http(server_dir: Path) -> Iterator[str]:
    port = free_port()
    yield from serve([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], port,
                     server_dir.parent / "http.log", cwd=server_dir)


CHUNKED_SERVER = r"""
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/chunked/":  # an index page sent in chunks, without Content-Length
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(200):
                piece = f'<a href="f{i:03}.txt">f{i:03}</a>\n'.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif self.path.startswith("/chunked/f"):
            self._file(self.path.encode())
        else:
            self.send_error(404)
    def do_HEAD(self):
        self._file(self.path.encode(), head=True)
    def _file(self, body, head=False):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
        self.end_headers()
        if not head:
            self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def chunked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    where = tmp_path_factory.mktemp("chunked")
    (where / "server.py").write_text(CHUNKED_SERVER)
    port = free_port()
    yield from serve([sys.executable, str(where / "server.py"), str(port)], port, where / "server.log")


def client(endpoint: str):  # noqa: ANN201 - a boto3 client
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                        region_name="us-east-1")


def bucket(endpoint: str, name: str, objects: dict[str, bytes]) -> None:
    c = client(endpoint)
    c.create_bucket(Bucket=name)
    for key, body in objects.items():
        c.put_object(Bucket=name, Key=key, Body=body)


def s3_spec(endpoint: str, source: str) -> dict:
    return {"source": source, "s3": {"endpoint": endpoint}, "credentials": {"key": KEY, "secret": SECRET}}


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


LIST = "mkdir -p out && cd in && find . -type f | sort > ../out/files && cat $(cat ../out/files) | md5sum > ../out/sum"


def test_an_s3_dataset_is_staged_in_shards_with_keys_from_a_secret_and_reused(cli: Cli, tmp_path: Path,
                                                                             s3: str) -> None:
    objects = {f"run42/ev{e:02}.root": f"event {e}\n".encode() * (e + 1) for e in range(7)}
    objects.update({"run42/notes.txt": b"not selected\n", "run43/ev00.root": b"another run\n"})
    bucket(s3, "events", objects)
    out = tmp_path / "out"
    docs = f"""
apiVersion: v1
kind: Secret
metadata: {{name: store-keys}}
stringData: {{accessKey: {KEY}, secretKey: "{SECRET}"}}
---
apiVersion: podline.io/v1alpha1
kind: Dataset
metadata: {{name: events}}
spec:
  source: s3://events/run42
  endpoint: {s3}
  include: ["*.root"]
  accessKeySecret: {{name: store-keys, key: accessKey}}
  secretKeySecret: {{name: store-keys, key: secretKey}}
---
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: NAME}}
spec:
  shards: 2
  inputs: [{{dataset: events, path: in}}]
  outputs: [{{path: out, destination: {out}/NAME}}]
  steps:
  - name: list
    image: busybox
    command: [sh, -c, '{LIST}']
"""
    cli.apply(docs.replace("NAME", "first"))
    assert cli.wait("pipeline/first", "phase=Succeeded").returncode == 0, cli("describe", "pipeline", "first").stdout
    slices = [(out / "first" / str(k) / "files").read_text().split() for k in range(2)]
    assert slices == [[f"./ev{e:02}.root" for e in range(0, 7, 2)], [f"./ev{e:02}.root" for e in range(1, 7, 2)]]
    staged = [s["staging"] for s in cli.json("pipeline", "first")["status"]["shards"]]
    assert sum(s["filesCopied"] for s in staged) == 7 and sum(s["filesReused"] for s in staged) == 0
    assert sum(s["bytesCopied"] for s in staged) == sum(len(b) for k, b in objects.items() if k.startswith("run42/e"))

    cli.apply(docs.replace("NAME", "second"))  # the same objects (same ETags): from the node cache
    assert cli.wait("pipeline/second", "phase=Succeeded").returncode == 0
    staged = [s["staging"] for s in cli.json("pipeline", "second")["status"]["shards"]]
    assert sum(s["filesReused"] for s in staged) == 7 and sum(s["filesCopied"] for s in staged) == 0
    assert [(out / "second" / str(k) / "sum").read_text() for k in range(2)] == \
        [(out / "first" / str(k) / "sum").read_text() for k in range(2)]
    shown = cli("describe", "pipeline", "second").stdout + cli("get", "pipeline", "second", "-o", "yaml").stdout
    shown += "".join(p.read_text(errors="replace") for p in cli.home.rglob("*.log"))
    assert SECRET not in shown, "the secret key never shows in status, describe or logs"


def test_a_changed_s3_object_is_fetched_again_and_a_hostile_key_fails_the_staging(tmp_path: Path, s3: str) -> None:
    bucket(s3, "mutable", {"data/a.bin": b"A" * 1000, "data/b.bin": b"B" * 10})
    spec = s3_spec(s3, "s3://mutable/data")
    cache = tmp_path / "cache"
    assert stage_dataset(spec, tmp_path / "ws1", 0, 1, cache).filesCopied == 2
    client(s3).put_object(Bucket="mutable", Key="data/a.bin", Body=b"Z" * 1000)  # same size, new ETag
    again = stage_dataset(spec, tmp_path / "ws2", 0, 1, cache)
    assert (again.filesCopied, again.filesReused) == (1, 1)
    assert tree(tmp_path / "ws2") == {"a.bin": b"Z" * 1000, "b.bin": b"B" * 10}

    client(s3).put_object(Bucket="mutable", Key="data/../../escaped", Body=b"x")
    with pytest.raises(StagingError, match=r"does not name a file below the source"):
        stage_dataset(spec, tmp_path / "ws3" / "in", 0, 1, cache)
    assert not list(tmp_path.rglob("escaped"))

    absent = r"^s3://absent-bucket/x: listing failed: FileNotFoundError: The specified bucket does not exist"
    with pytest.raises(StagingError, match=absent):
        stage_dataset(s3_spec(s3, "s3://absent-bucket/x"), tmp_path / "ws4", 0, 1, cache)


def test_one_s3_object_is_a_dataset_of_one_file(tmp_path: Path, s3: str) -> None:
    bucket(s3, "single", {"path/to/table.csv": b"a,b\n1,2\n", "path/to/table.csv.bak": b"old"})
    staged = stage_dataset(s3_spec(s3, "s3://single/path/to/table.csv"), tmp_path / "ws", 0, 1, tmp_path / "c")
    assert staged.filesCopied == 1 and tree(tmp_path / "ws") == {"table.csv": b"a,b\n1,2\n"}


def test_an_http_directory_listing_is_staged_recursively_and_old_files_are_reused(tmp_path: Path, http: str,
                                                                                   server_dir: Path) -> None:
    root = server_dir / "listing"
    files = {"a.txt": b"alpha\n", "sub/b.txt": b"beta\n" * 1000, "sub/deeper/c.dat": bytes(range(256)),
             "with space.txt": b"spaced\n"}
    old = time.time() - 3600  # Last-Modified an hour ago: trusted by the node cache's quick check
    for rel, body in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
        os.utime(root / rel, (old, old))
    cache = tmp_path / "cache"
    first = stage_dataset({"source": f"{http}/listing/", "exclude": ["*.dat"]}, tmp_path / "ws1", 0, 1, cache)
    assert first.filesCopied == 3 and tree(tmp_path / "ws1") == {k: v for k, v in files.items() if "dat" not in k}
    assert abs((tmp_path / "ws1" / "a.txt").stat().st_mtime - old) < 1, "the Last-Modified time is kept"
    second = stage_dataset({"source": f"{http}/listing/"}, tmp_path / "ws2", 0, 1, cache)
    assert (second.filesReused, second.filesCopied) == (3, 1) and tree(tmp_path / "ws2") == files

    (root / "a.txt").write_bytes(b"ALPHA\n")  # just changed: fetched, and not indexed (racily clean)
    for ws in ("ws3", "ws4"):
        staged = stage_dataset({"source": f"{http}/listing/a.txt"}, tmp_path / ws, 0, 1, cache)
        assert staged.filesCopied == 1 and tree(tmp_path / ws) == {"a.txt": b"ALPHA\n"}


def test_an_http_listing_follows_only_links_below_the_source(tmp_path: Path, http: str, server_dir: Path) -> None:
    root = server_dir / "hostile"
    (root / "ok").mkdir(parents=True)
    (root / "ok" / "f.txt").write_bytes(b"fine\n")
    (server_dir / "secret.txt").write_bytes(b"outside the source\n")
    links = ["ok/", "../secret.txt", "/secret.txt", "ok/../../secret.txt", "?C=N;O=D", "#top",
             "http://example.invalid/x.txt", "ok/%2e%2e/%2e%2e/secret.txt", "mailto:x@y"]
    (root / "index.html").write_text("<html>" + "".join(f'<a href="{link}">x</a>' for link in links) + "</html>")
    staged = stage_dataset({"source": f"{http}/hostile/"}, tmp_path / "ws" / "in", 0, 1, tmp_path / "cache")
    assert staged.filesCopied == 1 and tree(tmp_path / "ws") == {"in/ok/f.txt": b"fine\n"}

    with pytest.raises(StagingError, match="listing failed"):
        stage_dataset({"source": f"{http}/absent/"}, tmp_path / "ws2", 0, 1, tmp_path / "cache")


def test_an_index_page_sent_in_chunks_is_read_to_its_end(tmp_path: Path, chunked: str) -> None:
    staged = stage_dataset({"source": f"{chunked}/chunked/"}, tmp_path / "ws", 0, 1, tmp_path / "cache")
    assert staged.filesCopied == 200
    assert tree(tmp_path / "ws")["f199.txt"] == b"/chunked/f199.txt"


def test_a_file_larger_than_a_read_comes_from_a_server_without_range_requests(tmp_path: Path, http: str,
                                                                              server_dir: Path) -> None:
    body = bytes(range(256)) * (20 * 4096 + 7)  # 20 MiB and a bit: more than one read of 8 MiB
    (server_dir / "big.bin").write_bytes(body)  # http.server answers a Range request with the whole file
    staged = stage_dataset({"source": f"{http}/big.bin"}, tmp_path / "ws", 0, 1, tmp_path / "cache")
    assert staged.bytesCopied == len(body) and (tmp_path / "ws" / "big.bin").read_bytes() == body


def test_keys_that_would_share_a_workspace_path_fail_the_staging(tmp_path: Path, s3: str) -> None:
    bucket(s3, "twins", {"p/a": b"one" * 1000, "p//a": b"two" * 500})
    with pytest.raises(StagingError, match=r"'twins/p//a' does not name a file below the source"):
        stage_dataset(s3_spec(s3, "s3://twins/p"), tmp_path / "ws", 0, 1, tmp_path / "cache")


def test_two_links_that_decode_to_one_path_fail_the_staging(tmp_path: Path, http: str, server_dir: Path) -> None:
    root = server_dir / "twolinks"
    root.mkdir()
    (root / "index.html").write_text('<a href="a%FF">1</a> <a href="a%FE">2</a> <a href="ok">3</a> <a href="ok">4</a>')
    with pytest.raises(StagingError, match=r"would both be 'a\ufffd' in the workspace"):
        stage_dataset({"source": f"{http}/twolinks/"}, tmp_path / "ws", 0, 1, tmp_path / "cache")
