"""HTTP dataset listings from index pages that link their parent directory, as real servers' do: nginx
autoindex (`../`, on the root page too, where it resolves to the root itself) and Apache (an absolute
"Parent Directory" link and sorting links). The listing is exactly the files below the source: the parent
links neither fail it nor send the crawl back up (and round again, until the depth limit)."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fsspec", reason="remote datasets need fsspec and aiohttp: pip install -e '.[test]'")
pytest.importorskip("aiohttp", reason="remote datasets need fsspec and aiohttp: pip install -e '.[test]'")

from podline.runtime.remote import connect, list_files  # noqa: E402
from podline.runtime.staging import stage_dataset  # noqa: E402

FILES = {"top.txt": b"top\n", "data/x.txt": b"x\n", "data/a/y.txt": b"y\n", "data/a/b/z.txt": b"z\n"}


def nginx(*names: str) -> str:
    return "<html><body><pre><a href=\"../\">../</a>\n" + "".join(f'<a href="{n}">{n}</a>\n' for n in names)


def apache(parent: str, *names: str) -> str:
    sort = "".join(f'<a href="?C={c};O=A">{c}</a>' for c in "NMSD")
    return f'<html><body>{sort}<a href="{parent}">Parent Directory</a>' + "".join(
        f'<a href="{n}">{n}</a>' for n in names)


PAGES = {
    "index.html": nginx("data/", "top.txt"),
    "data/index.html": nginx("a/", "x.txt"),
    "data/a/index.html": apache("/data/", "b/", "y.txt"),
    "data/a/b/index.html": apache("/data/a/", "z.txt") + '<a href="../">also ../</a><a href="/">home</a>',
}


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """The test output is no place for an access log."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("site")
    for rel, body in {**FILES, **{k: v.encode() for k, v in PAGES.items()}}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def listed(source: str) -> list[str]:
    return [f.rel for f in list_files(connect({"source": source}), lambda rel: True)]


def test_a_source_at_the_server_root_lists_every_file_once(site: str) -> None:
    assert listed(f"{site}/") == sorted(FILES)


def test_a_source_below_the_root_lists_its_files_without_climbing_back(site: str) -> None:
    assert listed(f"{site}/data/") == ["a/b/z.txt", "a/y.txt", "x.txt"]
    assert listed(f"{site}/data/a/") == ["b/z.txt", "y.txt"]


def test_a_source_at_the_root_is_staged_with_its_bytes(site: str, tmp_path: Path) -> None:
    staged = stage_dataset({"source": f"{site}/"}, tmp_path / "ws", 0, 1, tmp_path / "cache")
    assert staged.filesCopied == len(FILES)
    assert {str(p.relative_to(tmp_path / "ws")): p.read_bytes()
            for p in (tmp_path / "ws").rglob("*") if p.is_file()} == FILES
