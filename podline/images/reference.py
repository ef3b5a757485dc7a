"""Parse an image reference into where the image comes from: a registry, an OCI layout, an archive or a rootfs.

One parser for every transport so the runtimes, the planner's validation and the cache all agree on what
a string names. Registry names follow the distribution reference grammar (as Docker normalises them:
`busybox` is `docker.io/library/busybox:latest`); anything unparsable is `InvalidImageName` with one line.
Names and tags are ASCII only (explicit ranges, every pattern compiled with re.ASCII: a Unicode letter
would pass a word class and fail only later, in a URL); the paths of local images may be any UTF-8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import INVALID_NAME, PULL, ImageError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
LOCAL_TRANSPORTS = ("oci", "oci-archive", "docker-archive", "dir", "rootfs")
# SPEC names a plain directory `rootfs:PATH`; skopeo calls it `dir:`. Both parse to the one "dir" transport so
# the runtimes and the cache need to know only one name.
_ALIASES = {"rootfs": "dir"}

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$", re.ASCII)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", re.ASCII)
_LOCAL_TAG = re.compile(r"^[A-Za-z0-9._:@/+-]{1,255}$", re.ASCII)  # an OCI layout's ref.name is freer than a tag
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$", re.ASCII)
_HOSTNAME = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$",
                       re.ASCII)
_HOST = re.compile(r"^(?:(?P<name>[^:\[\]]+)|\[(?P<v6>[0-9A-Fa-f:.]+)\])(?::(?P<port>[0-9]{1,5}))?$", re.ASCII)


@dataclass(frozen=True)
class Reference:
    """A parsed image reference.

    transport: "docker" (a registry), "oci", "oci-archive", "docker-archive", "dir" or "sif".
    For "docker": registry ("host[:port]", "docker.io" by default), repository, tag and/or digest.
    For the others: path (absolute) and, for "oci"/"oci-archive", an optional tag.
    """

    transport: str
    registry: str = ""
    repository: str = ""
    tag: str = ""
    digest: str = ""
    path: str = ""

    @property
    def api_host(self) -> str:
        """The host[:port] to talk the distribution API to (Docker Hub's API lives on another name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        """registry/repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def plain_http(self, insecure: tuple[str, ...] | list[str] = ()) -> bool:
        """Loopback registries and those listed as insecure are spoken to over plain HTTP."""
        if self.registry.startswith("["):
            host = self.registry.split("]")[0] + "]"
        else:
            host = self.registry.rsplit(":", 1)[0]
        return host in ("127.0.0.1", "localhost", "[::1]") or self.registry in insecure or host in insecure

    def __str__(self) -> str:
        if self.transport == "docker":
            text = self.name
            if self.tag:
                text += f":{self.tag}"
            if self.digest:
                text += f"@{self.digest}"
            return text
        suffix = f":{self.tag}" if self.tag else ""
        return f"{self.transport}:{self.path}{suffix}"


def _invalid(text: str, problem: str) -> ImageError:
    return ImageError(f"{text!r}: invalid image reference: {problem}", reason=INVALID_NAME)


def parse_reference(text: str) -> Reference:
    """Parse `text`; raise ImageError(reason="InvalidImageName") with a one-line message if it is not one."""
    if not isinstance(text, str) or not text.strip():
        raise _invalid(str(text), "empty")
    if text != text.strip() or any(c.isspace() or ord(c) < 32 for c in text):
        raise _invalid(text, "contains whitespace or control characters")
    if text.startswith("docker://"):
        return _parse_registry(text, text[len("docker://") :])
    for transport in LOCAL_TRANSPORTS:
        if text.startswith(transport + ":"):
            return _parse_local(text, transport, text[len(transport) + 1 :])
    if text.startswith("/"):
        return _parse_local(text, "dir", text)
    return _parse_registry(text, text)


def _parse_local(text: str, transport: str, rest: str) -> Reference:
    path, tag = rest, ""
    if transport in ("oci", "oci-archive"):
        head, sep, tail = rest.rpartition(":")
        if sep and "/" not in tail:
            path, tag = head, tail
            if not _TAG.match(tag) and not _LOCAL_TAG.match(tag):
                raise _invalid(text, f"bad tag {tag!r}")
    if not path.startswith("/"):
        raise _invalid(text, f"{transport}: needs an absolute path")
    if "\0" in path or any(part == ".." for part in path.split("/")):
        raise _invalid(text, "the path must not contain '..'")
    if path.endswith(".sif"):
        raise ImageError(f"{text}: SIF images need the apptainer runtime (bwrap and host cannot run them)", reason=PULL)
    return Reference(transport=_ALIASES.get(transport, transport), path=path, tag=tag)


def _parse_registry(text: str, rest: str) -> Reference:
    if len(rest) > 512:
        raise _invalid(text, "longer than 512 characters")
    if not rest.isascii():
        raise _invalid(text, "contains non-ASCII characters")
    digest = ""
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise _invalid(text, "the digest must be sha256: and 64 lowercase hex digits")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry = first
        m = _HOST.match(registry)
        bad_port = m and m.group("port") and not 0 < int(m.group("port")) < 65536
        if not m or bad_port or (m.group("name") and not _HOSTNAME.match(m.group("name"))):
            raise _invalid(text, f"bad registry host {registry!r}")
    else:
        registry, remainder = DOCKER_HUB, rest
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    tag = ""
    last = remainder.rsplit("/", 1)[-1]
    if ":" in last:
        remainder, tag = remainder.rsplit(":", 1)
        if not _TAG.match(tag):
            raise _invalid(text, f"bad tag {tag!r}")
    repository = remainder
    if not repository:
        raise _invalid(text, "no repository name")
    if not _REPOSITORY.match(repository):
        raise _invalid(text, f"bad repository name {repository!r} (lowercase letters, digits, '.', '_', '-', '/')")
    if len(registry) + 1 + len(repository) > 255:
        raise _invalid(text, "the name is longer than 255 characters")
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not tag and not digest:
        tag = "latest"
    return Reference(transport="docker", registry=registry, repository=repository, tag=tag, digest=digest)
