"""Push to real docker-registry instances: anonymous, basic auth and bearer tokens; skip of
blobs the registry has, chunked uploads, cross-repository mounts, resumed pushes, errors."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from hyperd.images import AuthError, ImageService, InvalidReference, RegistryError
from hyperd.images.errors import DigestMismatch, ImageNotFound

from .imagebuilder import build_image, d, f
from .localimage import local_image
from .regproxy import RegistryFront

pytestmark = pytest.mark.registry


def _image(svc, name: str, big: int = 0):
    layers = [[d("etc"), f("etc/passwd", "root:x:0:0")], [f("data", os.urandom(big or 2000))]]
    return local_image(svc, layers, {"Cmd": ["sh"]}, name)


def _skopeo_digest(host: str, ref: str, creds: tuple[str, str] | None = None) -> str:
    cmd = ["skopeo", "inspect", "--tls-verify=false", f"docker://{host}/{ref}"]
    if creds:
        cmd[2:2] = ["--creds", f"{creds[0]}:{creds[1]}"]
    return json.loads(subprocess.run(cmd, capture_output=True, check=True).stdout)["Digest"]


def _uploads(urls: list[str]) -> list[str]:
    return [u for u in urls if u.startswith(("PUT ", "PATCH ")) and "/blobs/uploads/" in u]


def test_push_then_pull_back_byte_identical(registry, service, repo, requests_log, tmp_path):
    name = f"{registry.host}/{repo}:v1"
    rec = _image(service, name)
    events: list[dict] = []
    [digest] = service.push(name, progress=events.append)
    assert digest == rec.manifest_digest == _skopeo_digest(registry.host, f"{repo}:v1")
    statuses = [e.get("status") for e in events]
    assert statuses[0] == f"The push refers to repository [{registry.host}/{repo}]"
    assert statuses.count("Pushed") == 2 and statuses.count("Preparing") == 2
    assert events[-1]["aux"] == {"Tag": "v1", "Digest": digest, "Size": events[-1]["aux"]["Size"]}
    assert f"{registry.host}/{repo}@{digest}" in service.resolve(name).digests
    other = ImageService(tmp_path / "elsewhere")
    assert other.pull(f"{registry.host}/{repo}@{digest}").id == rec.id

    requests_log.clear()
    events.clear()
    service.push(name, progress=events.append)
    assert [e.get("status") for e in events].count("Layer already exists") == 2
    assert _uploads(requests_log.urls) == []


def test_pushed_oci_image_keeps_its_digest(registry, service, repo):
    img = build_image([[f("x", "1")], [f("y", "2")]])
    registry.pusher().push_image(repo, "oci", img)
    rec = service.pull(f"{registry.host}/{repo}:oci")
    service.tag(rec.id, f"{registry.host}/{repo}-copy:oci")
    [digest] = service.push(f"{registry.host}/{repo}-copy:oci")
    assert digest == img.digest == _skopeo_digest(registry.host, f"{repo}-copy:oci")


def test_big_blobs_go_up_in_chunks(registry, tmp_path, repo, requests_log):
    svc = ImageService(
        tmp_path / "s", {"push_chunk_size": 64 << 10}, session_factory=requests_log.session
    )
    name = f"{registry.host}/{repo}:big"
    rec = _image(svc, name, big=300_000)
    svc.push(name)
    patches = [u for u in requests_log.urls if u.startswith("PATCH ")]
    assert len(patches) >= 4
    assert svc.push(name) == [_skopeo_digest(registry.host, f"{repo}:big")] == [rec.manifest_digest]


def test_known_blobs_are_mounted_from_the_other_repository(registry, service, repo, requests_log):
    first = f"{registry.host}/{repo}:v1"
    rec = _image(service, first)
    service.push(first)
    second = f"{registry.host}/{repo}-b:v1"
    service.tag(rec.id, second)
    requests_log.clear()
    events: list[dict] = []
    service.push(second, progress=events.append)
    mounted = [e for e in events if e.get("status") == f"Mounted from {repo}"]
    assert len(mounted) == 2
    assert _uploads(requests_log.urls) == []


def test_basic_auth(auth_registry, tmp_path, repo):
    svc = ImageService(tmp_path / "s")
    name = f"{auth_registry.host}/{repo}:v1"
    rec = _image(svc, name)
    with pytest.raises(AuthError, match="push access denied|authentication required"):
        svc.push(name)
    svc.login(auth_registry.host, *auth_registry.auth)
    assert svc.push(name) == [rec.manifest_digest]
    assert (
        _skopeo_digest(auth_registry.host, f"{repo}:v1", auth_registry.auth) == rec.manifest_digest
    )


def test_bearer_token_auth(registry, tmp_path, repo):
    front = RegistryFront(registry.url, "bob", "pw")
    try:
        svc = ImageService(tmp_path / "s")
        name = f"{front.host}/{repo}:v1"
        rec = _image(svc, name)
        with pytest.raises(AuthError):
            svc.push(name)
        assert svc.push(name, credentials=("bob", "pw")) == [rec.manifest_digest]
        scopes = [q.get("scope") for q in front.token_requests]
        assert [f"repository:{repo}:push,pull"] in scopes
        assert _skopeo_digest(registry.host, f"{repo}:v1") == rec.manifest_digest
    finally:
        front.close()


def _put_digests(requests: list[str]) -> set[str]:
    """Digests of the blob uploads a registry front forwarded (completed or not)."""
    out = set()
    for r in requests:
        if r.startswith("PUT") and "/blobs/uploads/" in r and "digest=" in r:
            out.add(r.split("digest=", 1)[1].split("&")[0].replace("%3A", ":"))
    return out


def test_interrupted_push_resumes_without_uploading_finished_blobs(registry, tmp_path, repo):
    front = RegistryFront(registry.url)
    try:
        svc = ImageService(tmp_path / "s", {"max_concurrent_downloads": 1})
        name = f"{front.host}/{repo}:v1"
        rec = _image(svc, name)
        puts = []

        def fault(method, path):
            if method == "PUT" and "/blobs/uploads/" in path:
                puts.append(path)
                if len(puts) == 2:
                    return 500
            return None

        front.fault = fault
        with pytest.raises(RegistryError, match="HTTP 500"):
            svc.push(name)
        finished = _put_digests(front.requests)  # forwarded, so stored by the registry
        assert finished and len(finished) < 3
        front.fault = None
        front.requests.clear()
        events: list[dict] = []
        assert svc.push(name, progress=events.append) == [rec.manifest_digest]
        again = _put_digests(front.requests)
        assert again and not again & finished  # nothing finished was sent twice
        assert len(again | finished) == 3  # two layers and the config, each once
    finally:
        front.close()


def test_push_errors(registry, service, repo):
    rec = _image(service, "busybox-like:v1")
    with pytest.raises(RegistryError, match="names no registry"):
        service.push("busybox-like:v1")
    with pytest.raises(InvalidReference, match="invalid tag"):
        service.push(f"{registry.host}/{repo}", tag="bad tag!")
    with pytest.raises(ImageNotFound, match="does not exist locally"):
        service.push(f"{registry.host}/{repo}:nosuch")
    front = RegistryFront(registry.url)
    try:
        name = f"{front.host}/{repo}:v1"
        service.tag(rec.id, name)
        front.fake_digest = "sha256:" + "0" * 64
        with pytest.raises(DigestMismatch, match="named the manifest"):
            service.push(name)
        assert not any(front.host in x for x in service.resolve(name).digests)
    finally:
        front.close()
