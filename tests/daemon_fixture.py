"""A real hyperd for the tests: own root, socket and run dir; the busybox image loaded.

Its fixtures are registered in tests/conftest.py so every test directory shares one daemon.

The daemon is shared by the session (booting it costs nothing; VMs are per test). A test
may restart it (even with SIGKILL). Its log and the console logs of a failed test's
containers are kept under build/test-logs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from tests.conftest import BUILD, ROOT, failed
from tests.workdir import qemu_workdir

LOG_DIR = BUILD / "test-logs"


class Daemon:
    """A hyperd process under test; ``extra_config`` is appended to its config file and
    ``launcher`` (e.g. ``prlimit …``) runs it."""

    def __init__(self, workdir: Path, extra_config: str = "", launcher: tuple[str, ...] = ()):
        self.launcher = launcher
        self.workdir = workdir
        self.root = workdir / "root"
        self.run_dir = workdir / "run"
        self.socket = self.run_dir / "hyperd.sock"
        self.config = workdir / "config"
        self.log = workdir / "hyperd.log"
        self.config.write_text(
            f'root = "{self.root}"\nrun_dir = "{self.run_dir}"\nsocket = "{self.socket}"\n'
            f'kernel = "{BUILD / "vmlinux"}"\ninitrd = "{BUILD / "initrd.img"}"\n'
            'log_level = "debug"\n'
            'bridge = ""\n'  # no host networking here: tests/net runs it in a namespace
            # VMs boot per container unless a test asks for the pool (tests/net/test_pool.py)
            + ("" if "factory" in extra_config else 'factory = "none"\n')
            + extra_config
        )
        self.proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict:
        return {**os.environ, "HYPER_HOST": f"unix://{self.socket}"}

    def start(self) -> None:
        log = open(self.log, "ab")  # noqa: SIM115 - the daemon writes it
        self.proc = subprocess.Popen(
            [*self.launcher, sys.executable, "-m", "hyperd.main", "--config", str(self.config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,  # `-m hyperd.main` runs this checkout's daemon, not an installed one
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hyperd exited: {self.log.read_text()[-2000:]}")
            try:
                if self.socket.exists() and self.client().ping():
                    return
            except docker.errors.DockerException:
                pass  # a stale socket from a killed daemon, or not listening yet
            time.sleep(0.1)
        raise RuntimeError("hyperd did not come up")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=f"unix://{self.socket}", timeout=120)

    def load_busybox(self) -> None:
        """Load the built-in busybox image (made here, offline)."""
        archive = self.workdir / "busybox.tar"
        subprocess.run(
            [sys.executable, "-m", "hyperd.images.builtin", "busybox", str(archive)], check=True
        )
        res = self.hyper("load", "-i", str(archive))
        assert res.returncode == 0, res.stderr

    def remove_containers(self) -> None:
        """``rm -f`` every container."""
        for cid in self.hyper("ps", "-aq").stdout.decode().split():
            self.hyper("rm", "-f", cid)

    def hyper(self, *args: str, input: bytes | None = None, timeout: float = 120):
        """Run the `hyper` CLI against this daemon."""
        return subprocess.run(
            [sys.executable, "-m", "hyperctl.cli", *args],
            input=input,
            capture_output=True,
            env=self.env,
            timeout=timeout,
            cwd=ROOT,
        )


@contextlib.contextmanager
def running_daemon(prefix: str, extra_config: str = ""):
    """A started daemon with the built-in busybox loaded; its containers, process and files
    are gone afterwards."""
    workdir = qemu_workdir(prefix)
    d = Daemon(workdir, extra_config)
    d.start()
    d.load_busybox()
    try:
        yield d
    finally:
        try:
            for c in d.client().containers.list(all=True):
                c.remove(force=True)
        finally:
            d.stop()
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def daemon(libvirt_up, guest_assets):
    with running_daemon("hyperd-test-") as d:
        yield d


@pytest.fixture
def hyperd(daemon, request):
    """The shared daemon; after a failed test, keep its log and containers' consoles."""
    yield daemon
    if daemon.proc is None or daemon.proc.poll() is not None:
        daemon.start()
    if failed(request):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        test = re.sub(r"[^\w.-]+", "_", request.node.name)
        shutil.copy(daemon.log, LOG_DIR / f"{test}.hyperd.log")
        for console in (daemon.root / "containers").glob("*/console.log"):
            shutil.copy(console, LOG_DIR / f"{test}.{console.parent.name[:12]}.console.log")
