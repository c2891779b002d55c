"""Fixtures: local docker-registry instances (anonymous and htpasswd), an ImageService."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from hyperd.images import ImageService

from .imagebuilder import Pusher

REGISTRY_BIN = shutil.which("docker-registry")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Registry:
    host: str
    storage: Path
    proc: subprocess.Popen
    log: Path
    auth: tuple[str, str] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def blob_path(self, digest: str) -> Path:
        hexpart = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def pusher(self) -> Pusher:
        return Pusher(self.url, self.auth)


def start_registry(workdir: Path, htpasswd: Path | None = None) -> Registry:
    """Run Debian's docker-registry on a free loopback port until it answers /v2/."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    storage = workdir / "storage"
    auth = f"auth:\n  htpasswd:\n    realm: hyper-test\n    path: {htpasswd}\n" if htpasswd else ""
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: {uuid.uuid4().hex}\n" + auth
    )
    log = workdir / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    reg = Registry(f"127.0.0.1:{port}", storage, proc, log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            r = requests.get(f"{reg.url}/v2/", timeout=1)
            if r.status_code in (200, 401):
                return reg
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("docker-registry did not become ready")


def stop_registry(reg: Registry) -> None:
    reg.proc.terminate()
    try:
        reg.proc.wait(5)
    except subprocess.TimeoutExpired:
        reg.proc.kill()
        reg.proc.wait()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    if not REGISTRY_BIN:
        pytest.skip("docker-registry is not installed")
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    stop_registry(reg)


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory):
    if not REGISTRY_BIN or not shutil.which("htpasswd"):
        pytest.skip("docker-registry or htpasswd is not installed")
    work = tmp_path_factory.mktemp("auth-registry")
    htpasswd = work / "htpasswd"
    out = subprocess.run(
        ["htpasswd", "-Bbn", "alice", "s3cret"], capture_output=True, check=True, text=True
    ).stdout
    htpasswd.write_text(out)
    reg = start_registry(work, htpasswd)
    reg.auth = ("alice", "s3cret")
    yield reg
    stop_registry(reg)


@dataclass
class RequestLog:
    """Every URL requested through sessions made by ``service``'s session factory."""

    urls: list[str] = field(default_factory=list)

    def session(self) -> requests.Session:
        s = requests.Session()
        s.hooks["response"].append(
            lambda r, *a, **k: self.urls.append(f"{r.request.method} {r.url}")
        )
        return s

    def blob_gets(self) -> list[str]:
        return [u for u in self.urls if u.startswith("GET ") and "/blobs/" in u]

    def clear(self) -> None:
        self.urls.clear()


@pytest.fixture
def requests_log() -> RequestLog:
    return RequestLog()


@pytest.fixture
def service(tmp_path, requests_log) -> ImageService:
    return ImageService(tmp_path / "store", session_factory=requests_log.session)


@pytest.fixture
def repo() -> str:
    """A fresh repository name per test."""
    return f"test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sentinel(tmp_path) -> Path:
    """A directory outside every rootfs that layer extraction must never touch."""
    p = tmp_path / "sentinel"
    p.mkdir()
    (p / "keep").write_text("untouched")
    os.chmod(p, 0o755)
    return p
