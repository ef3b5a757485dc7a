"""Dataset files behind a URL: `s3://` (through s3fs) and `http(s)://` (fsspec's HTTP filesystem).

Why fsspec: one interface for listing, stat and streamed reads over object stores and web servers, so staging
(`runtime.staging`) treats a remote file as it treats one on the shared filesystem: listed once, looked up in
the node's content-addressed cache by a quick check, read once into the workspace and the cache together.

The quick check of a remote file is its size and version: its ETag when the server sends one (on S3 it
changes with the content), else its Last-Modified time (whole seconds, so the same "racily clean" rule as
for local mtimes applies: a file changed in the last seconds is not indexed); a file with neither is fetched
every time. After a read, the file is asked for again: a version or size that changed meanwhile means the
bytes may be a mix, and the file is read again (as staging does with a local file's size and mtime).

Object keys and links become paths in the workspace, so a key that is not a plain relative path (`..`,
empty components, NUL) fails the staging rather than writing outside the input directory; an HTTP listing
takes only links below the source URL, descends only into directories below the page that links them and
not yet listed (index pages link their parent), no deeper than MAX_DEPTH, at most MAX_FILES files.

fsspec, s3fs and aiohttp are imported here only, on first use: the CLI and pod start do not pay for them.
"""

from __future__ import annotations

import email.utils
import posixpath
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

MAX_DEPTH = 32
MAX_FILES = 1_000_000
READ_SIZE = 8 << 20
CONNECT_TIMEOUT = 30  # seconds; a server that stops answering fails the staging instead of holding the shard
READ_TIMEOUT = 60
MAX_PAGE = 64 << 20  # an index page
LIST_THREADS = 8


class RemoteError(Exception):
    """A remote source could not be listed or read (the staging fails with this message)."""


@dataclass(frozen=True)
class RemoteFile:
    rel: str  # path below the source, as it goes into the workspace
    url: str
    size: int
    mtime_ns: int  # Last-Modified, 0 when unknown
    etag: str  # "" when the server sends none


@dataclass(frozen=True)
class Remote:
    fs: Any  # an fsspec filesystem
    source: str
    s3: bool

    @property
    def index_prefix(self) -> str:
        """What makes a file's cache-index key unique besides its URL: the store it is on."""
        endpoint = getattr(self.fs, "client_kwargs", {}).get("endpoint_url") if self.s3 else None
        return f"{endpoint}|" if endpoint else ""


def connect(dataset: dict[str, Any]) -> Remote:
    """The filesystem for a planned dataset (`source`, and for S3 `s3` {endpoint, region} and `credentials`)."""
    source = dataset["source"]
    try:
        if source.startswith("s3://"):
            import s3fs

            options = dataset.get("s3") or {}
            client = {k: v for k, v in (("endpoint_url", options.get("endpoint")),
                                        ("region_name", options.get("region"))) if v}
            credentials = dataset.get("credentials") or {}
            fs = s3fs.S3FileSystem(key=credentials.get("key"), secret=credentials.get("secret"),
                                   client_kwargs=client, skip_instance_cache=True,
                                   config_kwargs={"connect_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT,
                                                  "retries": {"max_attempts": 3}})
            return Remote(fs, source, True)
        import aiohttp
        import fsspec

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT)
        return Remote(fsspec.filesystem("http", skip_instance_cache=True, client_kwargs={"timeout": timeout}),
                      source, False)
    except ImportError as exc:
        raise RemoteError(f"{source}: remote datasets need fsspec, s3fs and aiohttp ({exc})") from None


def list_files(remote: Remote, keep: Callable[[str], bool]) -> list[RemoteFile]:
    """The files of the source whose relative path `keep` accepts, sorted by relative path."""
    try:
        found = _list_s3(remote, keep) if remote.s3 else _list_http(remote, keep)
    except RemoteError:
        raise
    except Exception as exc:  # botocore, aiohttp and fsspec errors: the message says enough
        raise RemoteError(f"{remote.source}: listing failed: {_describe(exc)}") from None
    return sorted(found, key=lambda f: f.rel)


def _list_s3(remote: Remote, keep: Callable[[str], bool]) -> list[RemoteFile]:
    path = remote.source.removeprefix("s3://")
    info = _info_or_none(remote.fs, path) if "/" in path else None
    if info is not None and info.get("type") == "file":
        _check_rel(posixpath.basename(path), remote.source)
        return [_s3_file(posixpath.basename(path), info)]
    found = []
    prefix = path.rstrip("/") + "/" if "/" in path else path + "/"
    for key, info in remote.fs.find(path, detail=True).items():
        if key.endswith("/") or info.get("type") != "file" or not key.startswith(prefix):
            continue  # "directory marker" objects
        rel = key[len(prefix):]
        _check_rel(rel, key)  # `p//a` (rel `/a`) too: it would land on `p/a`'s file
        if keep(rel):
            found.append(_s3_file(rel, info))
        if len(found) > MAX_FILES:
            raise RemoteError(f"{remote.source}: more than {MAX_FILES} files")
    return found


def _s3_file(rel: str, info: dict[str, Any]) -> RemoteFile:
    modified = info.get("LastModified")
    mtime = int(modified.timestamp() * 1e9) if isinstance(modified, datetime) else 0
    return RemoteFile(rel, f"s3://{info['name']}", int(info["size"]), mtime, str(info.get("ETag") or ""))


def _list_http(remote: Remote, keep: Callable[[str], bool]) -> list[RemoteFile]:
    base = remote.source
    if not base.endswith("/"):
        name = unquote(posixpath.basename(urlsplit(base).path)) or "index"
        _check_rel(name, base)  # `..%2F..%2Fx` decodes to a path elsewhere
        return [_http_file(remote, name, base)]
    urls: list[tuple[str, str]] = []  # (rel, url)
    # Directories by relative path ("" is the source): index pages link their parent (nginx `../`, Apache's
    # "Parent Directory"), so without this set and the "strictly below the page" rule the crawl would list
    # `a/`, then `a/b/`, then `a/` again, ... until it hit MAX_DEPTH.
    listed = {""}
    level, depth = [("", base)], 0
    with ThreadPoolExecutor(LIST_THREADS) as pool:
        while level:
            depth += 1
            if depth > MAX_DEPTH:
                raise RemoteError(f"{base}: directories nested deeper than {MAX_DEPTH} levels")
            next_level: dict[str, str] = {}
            for (page, _), listing in zip(level, pool.map(lambda item: _links(remote, item[1]), level), strict=True):
                for link in sorted(listing):
                    rel = _below(base, link)
                    if rel is None:
                        continue
                    if link.endswith("/"):
                        if (not page or rel.startswith(page + "/")) and rel not in listed:
                            next_level.setdefault(rel, link)
                    elif keep(rel):
                        urls.append((rel, link))
                if len(urls) > MAX_FILES:
                    raise RemoteError(f"{base}: more than {MAX_FILES} files")
            listed.update(next_level)
            level = sorted(next_level.items())
        by_rel: dict[str, str] = {}
        for rel, url in urls:  # a page may link a file twice; two URLs for one path would share its file
            if by_rel.setdefault(rel, url) != url:
                raise RemoteError(f"{by_rel[rel]!r} and {url!r} would both be {rel!r} in the workspace")
        return list(pool.map(lambda item: _http_file(remote, *item), by_rel.items()))


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [value for name, value in attrs if name == "href" and value]


def _links(remote: Remote, url: str) -> list[str]:
    """The links of an index page, resolved as a browser resolves them (so `mailto:x` is no file here)."""
    pieces: list[bytes] = []
    with remote.fs.open(url, "rb", block_size=0) as page:  # to its end: a chunked page comes in pieces
        while piece := page.read(READ_SIZE):
            pieces.append(piece)
            if sum(map(len, pieces)) > MAX_PAGE:
                raise RemoteError(f"{url}: an index page of more than {MAX_PAGE >> 20} MiB")
    text = b"".join(pieces)
    anchors = _Anchors()
    anchors.feed(text.decode("utf-8", errors="replace"))
    return [urljoin(url, href) for href in anchors.hrefs]


def _below(base: str, link: str) -> str | None:
    """A link's path relative to the listing's base URL; None for links elsewhere (parents, other hosts,
    sorting links with a query)."""
    parts, root = urlsplit(link), urlsplit(base)
    if (parts.scheme, parts.netloc) != (root.scheme, root.netloc) or parts.query or parts.fragment:
        return None
    path = posixpath.normpath(unquote(parts.path) or "/")
    # The base normalised as the link is, and "/" for a source at the server root (whose prefix must not
    # become "": nginx's `../` on the root page resolves to the root itself, which is no file below it).
    top = posixpath.normpath(unquote(root.path) or "/")
    prefix = top if top.endswith("/") else top + "/"
    if not path.startswith(prefix) or len(path) <= len(prefix):
        return None  # elsewhere, or the base itself: not strictly below it
    rel = path[len(prefix):]
    _check_rel(rel, link)
    return rel


def _http_file(remote: Remote, rel: str, url: str) -> RemoteFile:
    info = remote.fs.info(url)
    if info.get("size") is None:
        raise RemoteError(f"{url}: the server gives no size (Content-Length)")
    modified = info.get("Last-Modified")
    mtime = 0
    if modified:
        try:
            mtime = int(email.utils.parsedate_to_datetime(modified).timestamp() * 1e9)
        except (TypeError, ValueError):
            mtime = 0
    return RemoteFile(rel, url, int(info["size"]), mtime, str(info.get("ETag") or ""))


def _check_rel(rel: str, where: str) -> None:
    parts = rel.split("/")
    if (not rel or "\0" in rel or any(p in ("", ".", "..") or len(p.encode()) > 255 for p in parts)
            or len(rel) > 4096):
        raise RemoteError(f"{where!r} does not name a file below the source (its path would be {rel!r})")


def _info_or_none(fs: Any, path: str) -> dict[str, Any] | None:
    try:
        return fs.info(path)
    except FileNotFoundError:
        return None


def stat(remote: Remote, rel: str, url: str) -> RemoteFile:
    """The file as it is now (after a read: did it change meanwhile?)."""
    try:
        if remote.s3:
            remote.fs.invalidate_cache(url)
            return _s3_file(rel, remote.fs.info(url))
        return _http_file(remote, rel, url)
    except RemoteError:
        raise
    except Exception as exc:
        raise RemoteError(f"{url}: {_describe(exc)}") from None


def read(remote: Remote, url: str, sink: Callable[[memoryview], None]) -> int:
    """Stream the file's bytes to `sink`; returns how many there were."""
    total = 0
    try:
        block = {"block_size": READ_SIZE, "cache_type": "none"} if remote.s3 else {"block_size": 0}  # http: one GET
        with remote.fs.open(url, "rb", **block) as source:
            while chunk := source.read(READ_SIZE):
                with memoryview(chunk) as view:
                    sink(view)
                total += len(chunk)
    except Exception as exc:  # FileNotFoundError included: fsspec's word for many errors (see _describe)
        raise RemoteError(f"{url}: {_describe(exc)}") from None
    return total


def _describe(exc: BaseException) -> str:
    """One line: the error, and what caused it (fsspec reports a refused connection or an HTTP 403 as
    FileNotFoundError, with the real error as its cause)."""
    parts = []
    while exc is not None and len(parts) < 3:
        text = str(exc).strip().splitlines()
        parts.append(f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return " (caused by ".join(parts) + ")" * (len(parts) - 1)
