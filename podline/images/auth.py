"""Registry credentials from a containers-auth.json / Docker config.json file, and the WWW-Authenticate parser.

The file is the one `podman login`, `skopeo login` and `docker login` write: {"auths": {"host:port":
{"auth": base64("user:password")}}}. Keys may carry a scheme or path (`https://index.docker.io/v1/`);
they are matched on host[:port] only. Without an explicit file, `$REGISTRY_AUTH_FILE` is used if set.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from pathlib import Path

from .errors import ImageError

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))', re.ASCII)
_DOCKER_HUB_KEYS = ("docker.io", "index.docker.io", "registry-1.docker.io")


def _host_of(key: str) -> str:
    key = key.split("://", 1)[-1]
    return key.split("/", 1)[0]


def credentials(auth_file: Path | None, registry: str, image: str) -> tuple[str, str] | None:
    """(user, password) for `registry` from the auth file, or None (anonymous)."""
    if auth_file is None:
        env = os.environ.get("REGISTRY_AUTH_FILE")
        if not env:
            return None
        auth_file = Path(env)
    try:
        doc = json.loads(Path(auth_file).read_text())
    except OSError as exc:
        raise ImageError(f"{image}: cannot read the auth file {auth_file}: {exc.strerror}") from None
    except ValueError as exc:
        raise ImageError(f"{image}: the auth file {auth_file} is not JSON: {exc}") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return None
    wanted = _DOCKER_HUB_KEYS if registry in _DOCKER_HUB_KEYS else (registry,)
    for key, entry in auths.items():
        if _host_of(str(key)) not in wanted or not isinstance(entry, dict):
            continue
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user, sep, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise ImageError(f"{image}: the auth file {auth_file} has a malformed 'auth' for {key}") from None
            if not sep:
                raise ImageError(f"{image}: the auth file {auth_file} has an 'auth' without ':' for {key}")
            return user, password
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return entry["username"], entry["password"]
    return None


def basic_header(creds: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` -> ("bearer", {"realm": ..., ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PARAM.finditer(rest)}
    return scheme.lower(), params
