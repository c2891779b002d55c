"""Pulling from a real local registry (Debian's docker-registry)."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from hyperd.images import (
    AuthError,
    DigestMismatch,
    ImageNotFound,
    ImageService,
    RegistryError,
    UnsupportedImage,
)
from hyperd.images.registry import is_insecure, parse_challenge

from .imagebuilder import build_image, d, f
from .regproxy import RegistryFront

pytestmark = pytest.mark.registry


def simple_image(tag="x", layers=3, arch="amd64", size=2000):
    return build_image(
        [[d("data"), f(f"data/{tag}-{i}", os.urandom(size))] for i in range(layers)], arch=arch
    )


def stored(service: ImageService) -> set[str]:
    return service.store.digests()


def test_pull_by_tag_and_digest(registry, service, repo):
    img = simple_image()
    digest = registry.pusher().push_image(repo, "v1", img)
    events = []
    rec = service.pull(f"{registry.host}/{repo}:v1", progress=events.append)
    assert rec.id == img.config_digest
    assert rec.manifest_digest == digest
    assert rec.tags == [f"{registry.host}/{repo}:v1"]
    assert rec.digests == [f"{registry.host}/{repo}@{digest}"]
    assert [x.digest for x in rec.layers] == img.layer_digests
    assert set(img.blobs) | {digest} == stored(service)
    assert events[0]["status"].startswith("Pulling from")
    assert any(e.get("status") == "Downloading" for e in events)
    short = [x.removeprefix("sha256:")[:12] for x in img.layer_digests]
    unpacked = [e["id"] for e in events if e.get("status") == "Pull complete"]
    assert unpacked == short  # each layer, bottom first, as its part of the root disk is made
    assert service.rootfs_dir.joinpath(f"{rec.id[7:]}.erofs").exists()
    assert events[-1]["status"].startswith("Status: Downloaded newer image")
    assert not list(service.store.ingest_dir.iterdir())

    # By digest: same image, found locally by either name
    rec2 = service.pull(f"{registry.host}/{repo}@{digest}")
    assert rec2.id == rec.id
    assert service.resolve(f"{registry.host}/{repo}@{digest}").id == rec.id
    assert service.resolve(rec.id[7:19]).id == rec.id
    assert service.image_config(f"{registry.host}/{repo}:v1")["Cmd"] == ["/bin/sh"]


def test_second_pull_downloads_nothing(registry, service, repo, requests_log):
    registry.pusher().push_image(repo, "latest", simple_image(layers=4))
    service.pull(f"{registry.host}/{repo}")
    assert len(requests_log.blob_gets()) == 5  # config + 4 layers
    requests_log.clear()
    events = []
    service.pull(f"{registry.host}/{repo}", progress=events.append)
    assert requests_log.blob_gets() == []
    assert events[-1]["status"].startswith("Status: Image is up to date")


def test_shared_layers_not_downloaded_again(registry, service, repo, requests_log):
    base = [d("base"), f("base/big", os.urandom(5000))]
    a = build_image([base, [f("a", "a")]])
    b = build_image([base, [f("b", "b")]])
    registry.pusher().push_image(repo, "a", a)
    registry.pusher().push_image(repo, "b", b)
    service.pull(f"{registry.host}/{repo}:a")
    requests_log.clear()
    service.pull(f"{registry.host}/{repo}:b")
    fetched = {u.rsplit("/", 1)[1] for u in requests_log.blob_gets()}
    assert fetched == {b.config_digest, b.layer_digests[1]}


def test_manifest_list_platform_selection(registry, service, repo):
    amd, arm = simple_image("amd"), simple_image("arm", arch="arm64")
    index_digest = registry.pusher().push_index(
        repo, "multi", [(amd, "linux/amd64"), (arm, "linux/arm64")]
    )
    name = f"{registry.host}/{repo}:multi"
    rec = service.pull(name, platform="linux/amd64")
    assert rec.id == amd.config_digest
    assert rec.index_digest == index_digest
    assert rec.digests == [f"{registry.host}/{repo}@{index_digest}"]
    rec_arm = service.pull(name, platform="linux/arm64")
    assert (rec_arm.id, rec_arm.architecture) == (arm.config_digest, "arm64")
    assert service.resolve(name).id == arm.config_digest  # the tag moved
    with pytest.raises(ImageNotFound, match="no matching manifest for linux/s390x"):
        service.pull(name, platform="linux/s390x")


def test_explicit_platform_mismatch_on_single_manifest(registry, service, repo):
    registry.pusher().push_image(repo, "arm", simple_image(arch="arm64"))
    with pytest.raises(ImageNotFound, match="does not match the requested platform"):
        service.pull(f"{registry.host}/{repo}:arm", platform="linux/amd64")


def test_missing_tag_and_repo(registry, service, repo):
    with pytest.raises(ImageNotFound):
        service.pull(f"{registry.host}/{repo}:nope")


def test_corrupted_blob_is_rejected_and_nothing_stored(registry, service, repo):
    img = simple_image(layers=2, size=4096)
    registry.pusher().push_image(repo, "bad", img)
    victim = img.layer_digests[1]
    path = registry.blob_path(victim)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match=victim):
        service.pull(f"{registry.host}/{repo}:bad")
    assert victim not in stored(service)
    assert service.list() == []
    assert not list(service.store.ingest_dir.iterdir())


def test_truncated_or_oversized_blob_is_rejected(registry, service, repo):
    img = simple_image(layers=1, size=4096)
    registry.pusher().push_image(repo, "big", img)
    path = registry.blob_path(img.layer_digests[0])
    path.write_bytes(path.read_bytes() + b"extra")
    with pytest.raises(DigestMismatch, match="more than the declared"):
        service.pull(f"{registry.host}/{repo}:big")
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(DigestMismatch, match="expected"):
        service.pull(f"{registry.host}/{repo}:big")
    assert img.layer_digests[0] not in stored(service)


def test_interrupted_pull_leaves_nothing_and_retry_finishes(registry, tmp_path, repo):
    img = simple_image(layers=3, size=300_000)
    registry.pusher().push_image(repo, "v", img)
    calls = {"n": 0}

    class Boom(Exception):
        pass

    def progress(event):
        if event.get("status") == "Downloading":
            calls["n"] += 1
            if calls["n"] == 1:
                raise Boom("interrupted")

    svc = ImageService(tmp_path / "store")
    with pytest.raises(Boom):
        svc.pull(f"{registry.host}/{repo}:v", progress=progress)
    assert svc.list() == []
    assert not list(svc.store.ingest_dir.iterdir())
    for digest in svc.store.digests():  # whatever got stored is complete and verified
        assert svc.store.has(digest)
    # a fresh service (as after a daemon restart) finishes the pull
    (svc.store.ingest_dir / "blob-leftover.partial").write_bytes(b"junk")
    svc2 = ImageService(tmp_path / "store")
    assert not list(svc2.store.ingest_dir.iterdir())
    rec = svc2.pull(f"{registry.host}/{repo}:v")
    assert rec.id == img.config_digest
    assert set(img.blobs) <= svc2.store.digests()


def test_basic_auth_login_and_pull(auth_registry, tmp_path, repo):
    img = simple_image(layers=1)
    auth_registry.pusher().push_image(repo, "v", img)
    svc = ImageService(tmp_path / "store")
    name = f"{auth_registry.host}/{repo}:v"
    with pytest.raises(AuthError):
        svc.pull(name)
    with pytest.raises(AuthError):
        svc.login(auth_registry.host, "alice", "wrong")
    assert svc.credentials.get(auth_registry.host) is None
    svc.login(auth_registry.host, "alice", "s3cret")
    stored_cfg = json.loads((tmp_path / "store" / "config.json").read_text())
    assert auth_registry.host in stored_cfg["auths"]
    assert oct((tmp_path / "store" / "config.json").stat().st_mode & 0o777) == "0o600"
    assert svc.pull(name).id == img.config_digest
    assert svc.logout(auth_registry.host)
    assert svc.credentials.get(auth_registry.host) is None


class TokenProxy:
    """A bearer-token registry front: /token issues tokens, /v2/* proxies when authorised."""

    def __init__(self, upstream: str, user=None, password=None):
        self.upstream, self.tokens, self.token_requests = upstream, set(), []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path.startswith("/token"):
                    return proxy.token(self)
                auth = self.headers.get("Authorization", "")
                if auth.removeprefix("Bearer ") not in proxy.tokens:
                    self.send_response(401)
                    host = self.headers["Host"]
                    self.send_header(
                        "WWW-Authenticate",
                        f'Bearer realm="http://{host}/token",service="test-registry"',
                    )
                    self.end_headers()
                    return
                r = requests.get(
                    proxy.upstream + self.path,
                    headers={"Accept": self.headers.get("Accept", "*/*")},
                )
                self.send_response(r.status_code)
                for k in ("Content-Type", "Docker-Content-Digest"):
                    if k in r.headers:
                        self.send_header(k, r.headers[k])
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

        self.user, self.password = user, password
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, handler):
        import base64
        from urllib.parse import parse_qs, urlparse

        q = parse_qs(urlparse(handler.path).query)
        self.token_requests.append(q)
        if self.user:
            want = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if handler.headers.get("Authorization") != want:
                handler.send_response(401)
                handler.end_headers()
                return
        tok = os.urandom(8).hex()
        self.tokens.add(tok)
        body = json.dumps({"token": tok, "expires_in": 300}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_bearer_token_flow(registry, tmp_path, repo):
    img = simple_image(layers=2)
    registry.pusher().push_image(repo, "v", img)
    proxy = TokenProxy(registry.url, "bob", "pw")
    try:
        svc = ImageService(tmp_path / "store")
        with pytest.raises(AuthError):
            svc.pull(f"{proxy.host}/{repo}:v")
        svc.login(proxy.host, "bob", "pw")
        rec = svc.pull(f"{proxy.host}/{repo}:v")
        assert rec.id == img.config_digest
        scopes = [q.get("scope") for q in proxy.token_requests]
        assert [f"repository:{repo}:pull"] in scopes
        assert all(q["service"] == ["test-registry"] for q in proxy.token_requests)
    finally:
        proxy.close()


def test_docker_hub_mirror_is_tried_first(registry, tmp_path, requests_log):
    img = simple_image(layers=1)
    registry.pusher().push_image("library/mirrored", "latest", img)
    svc = ImageService(
        tmp_path / "store",
        {"mirrors": [registry.url]},
        session_factory=requests_log.session,
    )
    rec = svc.pull("mirrored")
    assert rec.tags == ["docker.io/library/mirrored:latest"]
    assert all(u.split()[1].startswith(registry.url) for u in requests_log.urls)
    assert svc.inspect("mirrored")["RepoTags"] == ["mirrored:latest"]


def test_unknown_layer_media_type_rejected(registry, service, repo):
    pusher = registry.pusher()
    cfg = pusher.push_blob(repo, b"{}")
    blob = pusher.push_blob(repo, b"not a layer")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": cfg,
            "size": 2,
        },
        "layers": [{"mediaType": "application/x-weird", "digest": blob, "size": 11}],
    }
    raw = json.dumps(manifest).encode()
    r = requests.put(
        f"{pusher.base}/v2/{repo}/manifests/weird",
        data=raw,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert r.status_code == 201, r.text
    with pytest.raises(UnsupportedImage, match="layer media type"):
        service.pull(f"{registry.host}/{repo}:weird")
    assert service.list() == []


def test_insecure_rules():
    assert is_insecure("127.0.0.1:5000")
    assert is_insecure("127.5.5.5")
    assert is_insecure("localhost:1234")
    assert is_insecure("[::1]:5000")
    assert not is_insecure("10.0.0.1:5000")
    assert is_insecure("10.0.0.1:5000", ["10.0.0.0/8"])
    assert is_insecure("reg.lan:5000", ["reg.lan:5000"])
    assert not is_insecure("registry.example.com")
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/nginx:pull",
    }


def test_unreachable_registry_is_a_registry_error(service):
    from hyperd.images import RegistryError

    from .conftest import free_port

    with pytest.raises(RegistryError, match="cannot reach registry"):
        service.pull(f"127.0.0.1:{free_port()}/nothing:here")


def test_root_disk_is_built_from_the_first_layers_while_the_last_downloads(
    registry, tmp_path, repo
):
    """The registry holds the top layer back: the layers under it are already unpacked
    ("Pull complete") before it has arrived ("Download complete")."""
    img = simple_image(layers=3)
    registry.pusher().push_image(repo, "v", img)
    top = img.layer_digests[-1]
    front = RegistryFront(registry.url)
    released = threading.Event()

    def hold_top(method, path):
        if method == "GET" and path.endswith(f"/blobs/{top}"):
            released.wait(10)
        return None

    events = []

    def progress(event):
        events.append(event)
        if event.get("status") == "Pull complete" and len(events_of("Pull complete")) == 2:
            released.set()  # both lower layers were unpacked while the top one was held

    def events_of(status):
        return [e["id"] for e in events if e.get("status") == status]

    try:
        front.fault = hold_top
        svc = ImageService(tmp_path / "store")
        rec = svc.pull(f"{front.host}/{repo}:v", progress=progress)
    finally:
        released.set()
        front.close()
    short = [x.removeprefix("sha256:")[:12] for x in img.layer_digests]
    assert events_of("Pull complete") == short
    statuses = [(e.get("status"), e.get("id")) for e in events]
    assert statuses.index(("Pull complete", short[1])) < statuses.index(
        ("Download complete", short[2])
    )
    assert svc.rootfs_dir.joinpath(f"{rec.id[7:]}.erofs").exists()


def test_a_layer_that_fails_to_download_while_others_unpack_fails_the_pull_cleanly(
    registry, tmp_path, repo
):
    img = simple_image(layers=3)
    registry.pusher().push_image(repo, "v", img)
    top = img.layer_digests[-1]
    front = RegistryFront(registry.url)
    front.fault = lambda method, path: 500 if path.endswith(f"/blobs/{top}") else None
    try:
        svc = ImageService(tmp_path / "store")
        with pytest.raises(RegistryError, match="HTTP 500"):
            svc.pull(f"{front.host}/{repo}:v")
    finally:
        front.close()
    assert svc.list() == []
    assert not list(svc.rootfs_dir.iterdir())  # no disk, no temp file, no scratch dir
    assert not list(svc.store.ingest_dir.iterdir())
