"""A registry that answers nonsense: every malformed answer is an image error naming the
problem (never a Python error's text such as "'str' object has no attribute 'get'" or
"maximum recursion depth exceeded"), and nothing is listed or stored.

The hostile registry is a small HTTP server of the test's own: the real registry refuses to
store such content, and the point is a registry that does not play by its rules."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hyperd.images import ImageService
from hyperd.images.errors import ImageError

from .imagebuilder import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HostileRegistry:
    """Serves ``routes`` (path → (status, content type, body, headers)); 404 elsewhere."""

    def __init__(self, routes: dict):
        self.routes = routes
        reg = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                status, ctype, body, headers = reg.routes.get(path, (404, "text/plain", b"", {}))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _manifest_route(body: bytes, ctype: str = OCI_MANIFEST) -> dict:
    return {"/v2/x/manifests/t": (200, ctype, body, {"Docker-Content-Digest": _digest(body)})}


def _bad_config_routes() -> dict:
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": "x"}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _digest(config), "size": len(config)},
            "layers": [],
        }
    ).encode()
    blob = {f"/v2/x/blobs/{_digest(config)}": (200, "application/octet-stream", config, {})}
    return {**_manifest_route(manifest), **blob}


CASES = {
    "index entries that are strings": (
        _manifest_route(
            json.dumps({"mediaType": OCI_INDEX, "manifests": ["a"]}).encode(), OCI_INDEX
        ),
        "image index entry 0 is not an object",
    ),
    "index platform that is a string": (
        _manifest_route(
            json.dumps({"mediaType": OCI_INDEX, "manifests": [{"platform": "linux"}]}).encode(),
            OCI_INDEX,
        ),
        "no matching manifest",
    ),
    "JSON nested 100,000 deep": (
        _manifest_route(b"[" * 100_000 + b"]" * 100_000),
        "nested too deeply",
    ),
    "a mediaType that is a list": (
        _manifest_route(json.dumps({"schemaVersion": 2, "mediaType": ["x"]}).encode()),
        "is not a string",
    ),
    "a config whose rootfs is a string": (_bad_config_routes(), "no rootfs.diff_ids list"),
    "an error body that is a list": (
        {"/v2/x/manifests/t": (404, "application/json", b'["errors"]', {})},
        'not found: ["errors"]',
    ),
    "a token server that answers a list": (
        {
            "/v2/x/manifests/t": (
                401,
                "text/plain",
                b"",
                {"WWW-Authenticate": 'Bearer realm="http://HOST/token"'},
            ),
            "/token": (200, "application/json", b"[1, 2]", {}),
        },  # fmt: skip
        "token server sent no JSON object",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_answer_is_a_clear_image_error(tmp_path, case):
    routes, message = CASES[case]
    reg = HostileRegistry({})
    for path, (status, ctype, body, headers) in routes.items():
        headers = {k: v.replace("HOST", reg.host) for k, v in headers.items()}
        reg.routes[path] = (status, ctype, body, headers)
    try:
        svc = ImageService(tmp_path / "store")
        with pytest.raises(ImageError) as info:
            svc.pull(f"{reg.host}/x:t")
        assert message in info.value.message
        assert svc.list() == [] and svc.store.digests() == set()
    finally:
        reg.close()
