"""A loopback front for a docker-registry: bearer-token auth (with a /token endpoint), and
faults on demand (a failing upload, a manifest answered with another digest). Every method
is forwarded; Location headers are rewritten to point at the front."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import requests

HOP = {"connection", "transfer-encoding", "keep-alive", "content-length", "server", "date"}


class RegistryFront:
    """``host`` forwards to ``upstream`` (http://127.0.0.1:PORT)."""

    def __init__(self, upstream: str, user: str | None = None, password: str | None = None):
        self.upstream = upstream.rstrip("/")
        self.user, self.password = user, password
        self.tokens: set[str] = set()
        self.token_requests: list[dict] = []
        self.requests: list[str] = []  # "METHOD path?query" of everything forwarded
        self.fault: Callable[[str, str], int | None] | None = None  # (method, path) -> status
        self.fake_digest: str | None = None  # answer manifest PUTs with this digest
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                front.handle(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    # -- handling ------------------------------------------------------------------------

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if h.path.startswith("/token"):
            return self._token(h)
        if self.user and h.headers.get("Authorization", "").removeprefix("Bearer ") not in (
            self.tokens
        ):
            realm = f"http://{self.host}/token"
            return self._send(
                h, 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="front"'}, b""
            )
        path = urlsplit(h.path).path
        status = self.fault(h.command, path) if self.fault else None
        if status:
            return self._send(h, status, {}, b'{"errors":[{"code":"INJECTED"}]}')
        self.requests.append(f"{h.command} {h.path}")
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", *HOP)}
        headers.pop("Authorization", None)
        r = requests.request(
            h.command, self.upstream + h.path, headers=headers, data=body, allow_redirects=False
        )
        out = {k: v for k, v in r.headers.items() if k.lower() not in HOP}
        if "Location" in out:
            out["Location"] = out["Location"].replace(self.upstream, f"http://{self.host}")
        if self.fake_digest and h.command == "PUT" and "/manifests/" in path:
            out["Docker-Content-Digest"] = self.fake_digest
        self._send(h, r.status_code, out, b"" if h.command == "HEAD" else r.content)

    def _send(self, h, status: int, headers: dict, body: bytes) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)) if h.command != "HEAD" else "0")
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _token(self, h) -> None:
        q = parse_qs(urlsplit(h.path).query)
        self.token_requests.append(q)
        want = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if h.headers.get("Authorization") != want:
            return self._send(h, 401, {}, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
        token = os.urandom(8).hex()
        self.tokens.add(token)
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        self._send(h, 200, {"Content-Type": "application/json"}, body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
