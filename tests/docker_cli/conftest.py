"""The real `docker` CLI (the client users have) against a test hyperd.

The docker binary is on these machines and `.ci/run` installs Debian's docker.io where it is
absent; a missing binary is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.images.conftest import start_registry
from tests.workdir import qemu_workdir

DOCKER = shutil.which("docker")


class DockerCLI:
    """Runs `docker` with DOCKER_HOST pointing at the test daemon."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.config_dir = daemon.workdir / "docker-config"
        self.config_dir.mkdir(exist_ok=True)

    @property
    def env(self) -> dict:
        return {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.daemon.socket}",
            "DOCKER_CONFIG": str(self.config_dir),
            "DOCKER_CLI_HINTS": "false",
        }

    def __call__(self, *args: str, input: bytes | None = None, timeout: float = 120):
        assert DOCKER, "the docker CLI is not installed (tools/install-deps.sh installs it)"
        return subprocess.run(
            [DOCKER, *args], input=input, capture_output=True, env=self.env, timeout=timeout
        )

    def ok(self, *args: str, **kw) -> str:
        res = self(*args, **kw)
        assert res.returncode == 0, (args, res.returncode, res.stdout, res.stderr)
        return res.stdout.decode()

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([DOCKER, *args], env=self.env, **kw)


@pytest.fixture
def docker(hyperd):
    return DockerCLI(hyperd)


@pytest.fixture
def name():
    return f"d-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def registry():
    """A docker-registry on loopback holding the built-in busybox as hyper-test/busybox."""
    workdir = qemu_workdir("hyper-dockercli-reg-")
    reg = start_registry(Path(workdir))
    archive = workdir / "busybox.tar"
    subprocess.run(
        [sys.executable, "-m", "hyperd.images.builtin", "busybox", str(archive)],
        check=True,
        cwd=ROOT,
    )
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            f"docker-archive:{archive}",
            f"docker://{reg.host}/hyper-test/busybox:latest",
        ],
        check=True,
    )
    yield reg
    reg.proc.terminate()
    reg.proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)
