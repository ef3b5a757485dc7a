"""A client for the OCI distribution API v2 (pull side only), with urllib: manifests, blobs, basic and token auth.

Just enough of the protocol to pull: GET/HEAD manifests with the OCI and Docker Accept types, stream
blobs, answer a 401 challenge (`Basic`, or `Bearer realm=...,service=...,scope=...` by fetching a token
from the realm with the basic credentials if any) and retry once. Every failure becomes a one-line
ImageError naming the image; network failures (refused, timeout, DNS, reset, 429, 5xx) are transient.
Credentials are never sent to a redirect target (blob storage often redirects elsewhere).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

from .auth import basic_header, credentials, parse_challenge
from .errors import ImageError
from .manifest import (
    ACCEPT,
    MAX_MANIFEST_BYTES,
    Blob,
    Manifest,
    check_digest,
    image_manifest,
    is_index,
    load,
    pick_platform,
    read_limit,
    sha256_of,
)
from .reference import Reference

TIMEOUT = 30.0
_NETWORK_ERRORS = (OSError, http.client.HTTPException)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _RefusedRedirect(Exception):
    """A redirect to something other than an http(s) URL (raised inside urllib, turned into an ImageError)."""


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    def http_error_302(self, req, fp, code, msg, headers):  # noqa: ANN001, ANN201 - urllib's signature
        location = headers.get("location") or headers.get("uri")
        if location:
            target = urllib.parse.urljoin(req.full_url, location)
            if urllib.parse.urlsplit(target).scheme.lower() not in _DEFAULT_PORTS:
                fp.close()
                raise _RefusedRedirect(f"refusing to follow a redirect to {target!r} (only http and https)")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _opener() -> urllib.request.OpenerDirector:
    """urlopen's handlers minus file:, ftp: and data:, with redirects limited to http(s)."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), urllib.request.HTTPHandler(),
                    urllib.request.HTTPSHandler(), urllib.request.HTTPDefaultErrorHandler(), _RedirectHandler(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, lowercased and with the default port filled in, to compare hosts."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, 0)


class Registry:
    """Pulls one repository's manifests and blobs."""

    def __init__(self, ref: Reference, text: str, *, auth_file: Path | None = None, insecure=()) -> None:
        self.ref, self.what = ref, text
        self.plain = ref.plain_http(tuple(insecure))
        self.base = f"{'http' if self.plain else 'https'}://{ref.api_host}/v2/{ref.repository}"
        self.origin = origin(self.base)
        self.creds = credentials(auth_file, ref.registry, text)  # the registry's, and only ever sent for it
        self.authorization = ""
        self.opener = _opener()

    # --- HTTP ---------------------------------------------------------------------------------------
    def _open(self, method: str, url: str, headers: dict[str, str], what: str):
        for attempt in range(2):
            request = urllib.request.Request(url, method=method, headers=headers)
            if self.authorization:
                request.add_unredirected_header("Authorization", self.authorization)
            try:
                return self.opener.open(request, timeout=TIMEOUT)
            except urllib.error.HTTPError as exc:
                answered = exc.geturl() or url
                if exc.code == 401 and origin(answered) != self.origin:
                    exc.close()  # not the registry's challenge: a host a redirect reached; it gets nothing
                    host = urllib.parse.urlsplit(answered).netloc
                    raise ImageError(f"{self.what}: {what}: {host}, where the registry {self.ref.api_host} redirected,"
                                     " answered 401 unauthorized (the registry's credentials are not sent to other"
                                     " hosts)") from None
                if exc.code == 401 and attempt == 0 and self._authenticate(exc.headers.get("WWW-Authenticate", "")):
                    exc.close()
                    continue
                raise self._http_error(exc, what) from None
            except _RefusedRedirect as exc:
                raise ImageError(f"{self.what}: {what}: {exc}") from None
            except ssl.SSLError as exc:
                raise self._network_error(exc) from None
            except urllib.error.URLError as exc:
                raise self._network_error(exc.reason) from None
            except _NETWORK_ERRORS as exc:
                raise self._network_error(exc) from None
        raise ImageError(f"{self.what}: unauthorized (401)")

    def _network_error(self, reason: object) -> ImageError:
        if isinstance(reason, ConnectionRefusedError):
            problem = "connection refused"
        elif isinstance(reason, socket.gaierror):
            problem = f"cannot resolve {self.ref.api_host.rsplit(':', 1)[0]}"
        elif isinstance(reason, TimeoutError | socket.timeout):
            problem = "timed out"
        elif isinstance(reason, ssl.SSLError):
            return ImageError(f"{self.what}: TLS error talking to {self.ref.api_host}: {reason}")
        else:
            problem = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        return ImageError(f"{self.what}: registry unreachable: {problem}", transient=True)

    def _http_error(self, exc: urllib.error.HTTPError, what: str) -> ImageError:
        detail = ""
        try:
            body = json.loads(exc.read(65536) or b"{}")
            errors = body.get("errors") if isinstance(body, dict) else None
            if errors and isinstance(errors[0], dict):
                detail = str(errors[0].get("message") or errors[0].get("code") or "")
        except (ValueError, OSError, http.client.HTTPException):
            pass
        finally:
            exc.close()
        if exc.code == 404:
            return ImageError(f"{self.what}: {what} unknown (404)")
        if exc.code in (401, 403):
            word = "unauthorized" if exc.code == 401 else "access denied"
            return ImageError(f"{self.what}: {word} ({exc.code})" + (f": {detail}" if detail else ""))
        transient = exc.code == 429 or exc.code >= 500
        return ImageError(f"{self.what}: registry error {exc.code} {exc.reason}" + (f": {detail}" if detail else ""),
                          transient=transient)

    def _authenticate(self, challenge: str) -> bool:
        """Answer a 401 challenge; False when there is nothing we can answer it with."""
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if self.creds is None:
                return False
            self.authorization = basic_header(self.creds)
            return True
        if scheme != "bearer" or not params.get("realm"):
            return False
        query = {k: v for k, v in (("service", params.get("service")), ("scope", params.get("scope"))) if v}
        query.setdefault("scope", f"repository:{self.ref.repository}:pull")
        realm = params["realm"]
        scheme = urllib.parse.urlsplit(realm).scheme.lower()
        if scheme not in _DEFAULT_PORTS or not urllib.parse.urlsplit(realm).hostname:
            raise ImageError(f"{self.what}: refusing the token realm {realm!r}: not an http(s) URL")
        if scheme != "https" and not self.plain:
            raise ImageError(f"{self.what}: refusing the token realm {realm!r}: a registry spoken to over https must"
                             " have an https token realm")
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        if self.creds is not None:
            request.add_unredirected_header("Authorization", basic_header(self.creds))
        try:
            with self.opener.open(request, timeout=TIMEOUT) as response:
                doc = json.loads(response.read(1 << 20))
        except urllib.error.HTTPError as exc:
            exc.close()
            transient = exc.code == 429 or exc.code >= 500
            raise ImageError(f"{self.what}: token server {realm} refused ({exc.code} {exc.reason})",
                             transient=transient) from None
        except _RefusedRedirect as exc:
            raise ImageError(f"{self.what}: token server {realm}: {exc}") from None
        except urllib.error.URLError as exc:
            raise ImageError(f"{self.what}: token server {realm} unreachable: {exc.reason}", transient=True) from None
        except (ValueError, *_NETWORK_ERRORS) as exc:
            raise ImageError(f"{self.what}: token server {realm}: bad answer: {exc}", transient=True) from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise ImageError(f"{self.what}: token server {realm} gave no token")
        self.authorization = f"Bearer {token}"
        return True

    # --- manifests ------------------------------------------------------------------------------------
    def _manifest(self, reference: str) -> tuple[bytes, str, str]:
        """GET a manifest: (bytes, content type, digest) - the digest computed from the bytes."""
        with self._open("GET", f"{self.base}/manifests/{reference}", {"Accept": ACCEPT}, "manifest") as response:
            try:
                data = response.read(MAX_MANIFEST_BYTES + 1)
            except _NETWORK_ERRORS as exc:
                raise self._network_error(exc) from None
            if len(data) > MAX_MANIFEST_BYTES:
                raise ImageError(f"{self.what}: refusing manifest {reference}: larger than {MAX_MANIFEST_BYTES} bytes")
            return data, response.headers.get("Content-Type", ""), sha256_of(data)

    def head_digest(self) -> str:
        """The digest the tag (or digest) currently resolves to, asked with HEAD (falls back to GET)."""
        reference = self.ref.digest or self.ref.tag
        with self._open("HEAD", f"{self.base}/manifests/{reference}", {"Accept": ACCEPT}, "manifest") as response:
            digest = response.headers.get("Docker-Content-Digest", "")
        if not digest.startswith("sha256:"):
            digest = self._manifest(reference)[2]
        if self.ref.digest and digest != self.ref.digest:
            raise ImageError(f"{self.what}: digest mismatch: the registry answered {digest}")
        return digest

    def resolve(self) -> Manifest:
        """The single-platform manifest for the reference (through an index if multi-arch), digests checked."""
        reference = self.ref.digest or self.ref.tag
        data, content_type, digest = self._manifest(reference)
        if self.ref.digest:
            check_digest(data, self.ref.digest, self.what)
        doc = load(data, self.what)
        if is_index(doc, content_type, self.what):
            chosen = pick_platform(doc, self.what)
            sub, _, sub_digest = self._manifest(chosen.digest)
            check_digest(sub, chosen.digest, self.what)
            return image_manifest(sub, sub_digest, digest, self.what)
        return image_manifest(data, digest, digest, self.what)

    # --- blobs ------------------------------------------------------------------------------------------
    def open_blob(self, blob: Blob) -> BinaryIO:
        response = self._open("GET", f"{self.base}/blobs/{blob.digest}", {}, f"blob {blob.digest}")
        return _Limited(response, blob.size, self)

    def read_blob(self, blob: Blob) -> bytes:
        """A blob read whole (a config): at most its declared size, or 16 MiB when the manifest gives none."""
        limit = read_limit(blob, self.what)
        response = self._open("GET", f"{self.base}/blobs/{blob.digest}", {}, f"blob {blob.digest}")
        too_big = "" if blob.size >= 0 else f"blob {blob.digest} (no size in the manifest) is larger than {limit} bytes"
        with _Limited(response, limit, self, too_big) as f:
            data = f.read()
        check_digest(data, blob.digest, self.what)
        return data


class _Limited:
    """A blob response that turns network errors into transient ImageErrors and stops at the declared size."""

    def __init__(self, response, size: int, registry: Registry, too_big: str = "") -> None:
        self.response, self.left, self.registry = response, size if size >= 0 else -1, registry
        self.too_big = too_big or "a blob is larger than its manifest says"

    def read(self, n: int = -1) -> bytes:
        try:
            if self.left < 0:
                return self.response.read(n)
            data = self.response.read(self.left + 1 if n < 0 else min(n, self.left + 1))
        except _NETWORK_ERRORS as exc:
            raise self.registry._network_error(exc) from None
        self.left -= len(data)
        if self.left < 0:
            raise ImageError(f"{self.registry.what}: {self.too_big}")
        return data

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> _Limited:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
