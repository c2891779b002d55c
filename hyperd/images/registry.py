"""Client for the OCI distribution / Docker Registry HTTP API v2 (pull side)."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

import requests

from hyperd.images.errors import (
    AuthError,
    DigestMismatch,
    ImageNotFound,
    RegistryError,
)
from hyperd.images.manifest import ACCEPT, MAX_MANIFEST_BYTES, Descriptor, media_type_of
from hyperd.images.reference import DEFAULT_REGISTRY

DOCKER_HUB_ENDPOINT = "https://registry-1.docker.io"
CHUNK = 1 << 20
USER_AGENT = "hyper/0.1 (+requests)"

_CHALLENGE_RE = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]*))')


@dataclass
class RegistryConfig:
    """Registry access settings shared by all clients."""

    mirrors: list[str] = field(default_factory=list)  # base URLs tried before Docker Hub
    insecure_registries: list[str] = field(default_factory=list)  # host[:port] or CIDR
    timeout: float = 30.0
    retries: int = 3


def _host_of(registry: str) -> str:
    if registry.startswith("["):
        return registry[1 : registry.index("]")]
    return registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry


def is_insecure(registry: str, insecure: list[str] | tuple[str, ...] = ()) -> bool:
    """Plain http is allowed for loopback hosts and explicitly listed registries."""
    host = _host_of(registry)
    if host == "localhost" or registry in insecure or host in insecure:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    for item in insecure:
        try:
            if ip in ipaddress.ip_network(item, strict=False):
                return True
        except ValueError:
            continue
    return False


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split ``WWW-Authenticate: Bearer realm="…",service="…"`` into scheme and params."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m[0].lower(): m[1] or m[2] for m in _CHALLENGE_RE.findall(rest)}
    return scheme.lower(), params


def _error_text(resp: requests.Response) -> str:
    """The registry's error list as one line, else the start of its body (any shape)."""
    try:
        body = resp.json()
    except (ValueError, RecursionError):
        body = None
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors:
        return "; ".join(
            f"{e.get('code', '')}: {e.get('message', '')}" if isinstance(e, dict) else repr(e)[:80]
            for e in errors[:5]
        )
    return resp.text[:200].strip() or resp.reason or ""


class RegistryClient:
    """Talks to one registry (and, for docker.io, its mirrors) on behalf of one user."""

    def __init__(
        self,
        registry: str,
        *,
        credentials: tuple[str, str] | None = None,
        config: RegistryConfig | None = None,
        session: requests.Session | None = None,
    ):
        self.registry = registry
        self.credentials = credentials
        self.config = config or RegistryConfig()
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", USER_AGENT)
        self._tokens: dict[str, tuple[str, float]] = {}
        self._basic = False
        self._lock = threading.Lock()
        self.endpoints = self._endpoints()

    def _endpoints(self) -> list[str]:
        if self.registry == DEFAULT_REGISTRY:
            return [m.rstrip("/") for m in self.config.mirrors] + [DOCKER_HUB_ENDPOINT]
        insecure = is_insecure(self.registry, self.config.insecure_registries)
        return [f"{'http' if insecure else 'https'}://{self.registry}"]

    # -- authentication -------------------------------------------------------------------

    def _auth_header(self, scope: str) -> dict[str, str]:
        with self._lock:
            token = self._tokens.get(scope)
        if token and token[1] > time.monotonic():
            return {"Authorization": f"Bearer {token[0]}"}
        return {}

    def _basic_auth(self):
        return self.credentials if self._basic and self.credentials else None

    def _fetch_token(self, params: dict[str, str], scope: str, key: str | None = None) -> None:
        """Get a bearer token for ``scope`` (several scopes space-separated), kept under
        ``key`` (default: the scope)."""
        realm = params.get("realm")
        if not realm:
            raise AuthError(f"{self.registry}: bearer challenge without realm")
        query: dict = {"service": params["service"]} if params.get("service") else {}
        if scope:
            query["scope"] = scope.split()
        try:
            resp = self.session.get(
                realm, params=query, auth=self.credentials, timeout=self.config.timeout
            )
        except requests.RequestException as e:
            raise RegistryError(f"{self.registry}: token request to {realm} failed: {e}") from e
        if resp.status_code in (401, 403):
            raise AuthError(f"{self.registry}: authentication failed: {_error_text(resp)}")
        if resp.status_code != 200:
            raise RegistryError(f"{self.registry}: token server answered {resp.status_code}")
        try:
            body = resp.json()
        except (ValueError, RecursionError):
            raise RegistryError(f"{self.registry}: token server sent invalid JSON") from None
        if not isinstance(body, dict):
            raise RegistryError(f"{self.registry}: token server sent no JSON object")
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{self.registry}: token server sent no token")
        expires = body.get("expires_in")
        ttl = max(expires if isinstance(expires, int) else 60, 60) - 10
        with self._lock:
            self._tokens[scope if key is None else key] = (token, time.monotonic() + ttl)

    def _answer_challenge(self, resp: requests.Response, scope: str) -> None:
        header = resp.headers.get("WWW-Authenticate", "")
        scheme, params = parse_challenge(header)
        if scheme == "bearer":
            self._fetch_token(params, scope or params.get("scope") or "", key=scope)
            return
        if scheme == "basic" and self.credentials:
            self._basic = True
            return
        raise AuthError(
            f"{self.registry}: authentication required"
            + ("" if self.credentials else "; log in first")
        )

    def request(self, method: str, url: str, scope: str, **kw) -> requests.Response:
        """Send a request, answering one auth challenge (bearer token or basic)."""
        kw.setdefault("timeout", self.config.timeout)
        for attempt in range(2):
            headers = {**kw.pop("headers", {}), **self._auth_header(scope)}
            kw["headers"] = headers
            resp = self.session.request(method, url, auth=self._basic_auth(), **kw)
            if resp.status_code != 401 or attempt == 1:
                return resp
            resp.close()
            self._answer_challenge(resp, scope)
        raise AssertionError("unreachable")

    # -- API calls ------------------------------------------------------------------------

    def _each_endpoint(self, call: Callable[[str], object]):
        last: Exception | None = None
        for base in self.endpoints:
            try:
                return call(base)
            except (RegistryError, requests.RequestException) as e:
                if isinstance(e, AuthError | ImageNotFound) and base == self.endpoints[-1]:
                    raise
                last = e
        if isinstance(last, requests.RequestException):
            raise RegistryError(f"cannot reach registry {self.registry}: {_why(last)}") from last
        raise last  # type: ignore[misc]

    def ping(self) -> None:
        """Check that the registry speaks API v2 and that our credentials are accepted."""

        def call(base: str) -> None:
            resp = self.request("GET", f"{base}/v2/", "")
            if resp.status_code in (401, 403):
                raise AuthError(f"{self.registry}: login failed: {_error_text(resp)}")
            if resp.status_code != 200:
                raise RegistryError(f"{self.registry}: /v2/ answered {resp.status_code}")

        self._each_endpoint(call)

    def get_manifest(self, repository: str, ref: str) -> tuple[bytes, str, str]:
        """Fetch a manifest or index by tag or digest: (raw bytes, media type, digest).

        When ``ref`` is a digest the content is verified against it.
        """
        scope = f"repository:{repository}:pull"

        def call(base: str) -> tuple[bytes, str, str]:
            url = f"{base}/v2/{repository}/manifests/{ref}"
            resp = self.request("GET", url, scope, headers={"Accept": ACCEPT}, stream=True)
            with resp:
                self._check(resp, f"{repository}:{ref}" if ":" not in ref else ref, repository)
                raw = resp.raw.read(MAX_MANIFEST_BYTES + 1, decode_content=True)
            if len(raw) > MAX_MANIFEST_BYTES:
                raise RegistryError(f"manifest for {repository}@{ref} is larger than 4 MiB")
            digest = "sha256:" + hashlib.sha256(raw).hexdigest()
            want = ref if ref.startswith("sha256:") else resp.headers.get("Docker-Content-Digest")
            if want and want.startswith("sha256:") and want != digest:
                raise DigestMismatch(f"manifest {repository}@{want}: content has digest {digest}")
            return raw, media_type_of(raw, resp.headers.get("Content-Type")), digest

        return self._each_endpoint(call)

    def _check(self, resp: requests.Response, what: str, repository: str) -> None:
        if resp.status_code == 200:
            return
        if resp.status_code == 404:
            raise ImageNotFound(f"{self.registry}/{what}: not found: {_error_text(resp)}")
        if resp.status_code in (401, 403):
            raise AuthError(
                f"pull access denied for {self.registry}/{repository}, repository does not "
                f"exist or may require 'login': {_error_text(resp)}"
            )
        detail = _error_text(resp)
        raise RegistryError(f"{self.registry}: {what}: HTTP {resp.status_code}: {detail}")

    def fetch_blob(
        self,
        repository: str,
        desc: Descriptor,
        out: BinaryIO,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Stream blob ``desc`` into ``out``, verifying its size and sha256 digest.

        Retries transient failures from the start (``out`` is truncated first).
        """
        scope = f"repository:{repository}:pull"
        attempts = max(1, self.config.retries)
        for attempt in range(attempts):
            out.seek(0)
            out.truncate()
            try:
                self._each_endpoint(
                    lambda base: self._download(base, scope, repository, desc, out, progress)
                )
                return
            except (RegistryError, requests.RequestException) as e:
                retryable = not isinstance(e, AuthError | ImageNotFound)
                if not retryable or attempt == attempts - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def _download(self, base, scope, repository, desc, out, progress) -> None:
        url = f"{base}/v2/{repository}/blobs/{desc.digest}"
        resp = self.request("GET", url, scope, stream=True, allow_redirects=True)
        with resp:
            self._check(resp, desc.digest, repository)
            hasher = hashlib.sha256()
            done = 0
            for chunk in resp.raw.stream(CHUNK, decode_content=False):
                done += len(chunk)
                if done > desc.size:
                    raise DigestMismatch(
                        f"blob {desc.digest}: more than the declared {desc.size} bytes"
                    )
                hasher.update(chunk)
                out.write(chunk)
                if progress:
                    progress(done)
        got = "sha256:" + hasher.hexdigest()
        if done != desc.size:
            raise DigestMismatch(f"blob {desc.digest}: got {done} bytes, expected {desc.size}")
        if got != desc.digest:
            raise DigestMismatch(f"blob {desc.digest}: content has digest {got}")


def _why(exc: requests.RequestException) -> str:
    """The innermost cause of a requests failure, without urllib3's retry wrapper."""
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__
    text = str(cause)
    if "Name or service not known" in text or "Temporary failure in name resolution" in text:
        return "host name not found"
    if isinstance(cause, ConnectionRefusedError) or "Connection refused" in text:
        return "connection refused"
    return text.rsplit(": ", 1)[-1] if ": " in text else text or type(cause).__name__
