"""A hyperd in a network namespace the tests create, with its own libvirtd and registry.

Everything that sends traffic (the daemon, QEMU via libvirtd, the registry, the test's
clients through `inside()`) lives in that namespace, so nothing reaches any address
outside it. Control goes over hyperd's unix socket, which crosses network namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.daemon_fixture import Daemon
from tests.workdir import qemu_workdir

REGISTRY = "127.0.0.1:5000"
NGINX = f"{REGISTRY}/hyper-test/nginx:latest"


class NetDaemon(Daemon):
    """hyperd inside `unshare --net --mount`, with libvirtd and virtlogd of its own."""

    ns_pid = 0

    def __init__(self, workdir: Path, extra_config: str = ""):
        super().__init__(workdir, extra_config)
        self.config.write_text(self.config.read_text().replace('bridge = ""', 'bridge = "hyper0"'))

    def start(self) -> None:
        """Create the namespace: holder, libvirtd, virtlogd, hyperd."""
        holder = self.workdir / "holder.pid"
        self.proc = subprocess.Popen(
            [
                "unshare",
                "--net",
                "--mount",
                "--fork",
                str(ROOT / "tests" / "net" / "netns-daemon.sh"),
                str(self.config),
                str(holder),
            ],
            stdout=self._log(),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "PYTHON": sys.executable},
        )
        deadline = time.time() + 30
        while not (holder.exists() and holder.read_text().strip()) and time.time() < deadline:
            time.sleep(0.1)
        self.ns_pid = int(holder.read_text())
        self._wait_up()

    def relaunch(self) -> None:
        """Start hyperd again inside the existing namespace."""
        self.proc = subprocess.Popen(
            [
                "nsenter",
                "-t",
                str(self.ns_pid),
                "-n",
                "-m",
                f"--wd={ROOT}",  # else the cwd is unreachable in the namespace: no `-m hyperd`
                "--",
                sys.executable,
                "-m",
                "hyperd.main",
                "--config",
                str(self.config),
            ],
            stdout=self._log(),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
        self._wait_up()

    def hyperd_pid(self) -> int:
        """hyperd's pid (unshare's child at first, the nsenter'd process after relaunch)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        kids = children.read_text().split() if children.exists() else []
        return int(kids[0]) if kids else self.proc.pid

    def _log(self):
        return open(self.log, "ab")  # noqa: SIM115 - the daemon writes it

    def _wait_up(self) -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"netns hyperd exited: {self.log.read_text()[-3000:]}")
            if self.hyper("version").returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"netns hyperd did not come up: {self.log.read_text()[-3000:]}")

    def inside(self, *cmd: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        """Run a command in the daemon's network namespace."""
        return subprocess.run(
            ["nsenter", "-t", str(self.ns_pid), "-n", *cmd],
            capture_output=True,
            timeout=timeout,
            cwd=ROOT,
            **kw,
        )

    def hyper_info(self) -> dict:
        """``hyper info``'s Hyper section (accelerator, VM pool, VM template)."""
        res = self.hyper("info", "--format", "{{json .Hyper}}")
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    def vms(self) -> list[str]:
        """The domains the namespace's libvirtd runs."""
        res = self.inside("nsenter", "-t", str(self.ns_pid), "-m", "virsh", "list", "--name")
        return [n for n in res.stdout.decode().split() if n]

    def inspect_field(self, name: str, fmt: str) -> str:
        """One field of ``hyper inspect`` (a Go template)."""
        return self.hyper("inspect", "--format", fmt, name).stdout.decode().strip()

    def kill_hyperd(self, sig: int) -> None:
        """Signal hyperd and wait for it to be gone (VMs and libvirtd stay)."""
        pid = self.hyperd_pid()
        os.kill(pid, sig)
        deadline = time.time() + 30
        while time.time() < deadline and Path(f"/proc/{pid}").exists():
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)

    def docker(self, *args: str, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
        """The real docker CLI (or docker-compose, as ``compose=True``) against this daemon."""
        config = self.workdir / "docker-config"
        config.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(config),
            "DOCKER_CLI_HINTS": "false",
        }
        exe = "docker-compose" if kw.pop("compose", False) else "docker"
        return subprocess.run(
            [exe, *args], capture_output=True, timeout=timeout, env=env, cwd=self.workdir, **kw
        )

    def shutdown(self) -> None:
        """Stop hyperd, then the namespace's libvirtd, virtlogd and holder."""
        pids = []
        for name in ("libvirtd", "virtlogd"):
            res = subprocess.run(
                ["nsenter", "-t", str(self.ns_pid), "-m", "cat", f"/run/libvirt/{name}.pid"],
                capture_output=True,
                text=True,
            )
            pids += [int(x) for x in res.stdout.split() if x.isdigit()]
        self.kill_hyperd(signal.SIGTERM)
        for pid in [*pids, self.ns_pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


@contextlib.contextmanager
def factory_daemon(prefix: str, factory: str):
    """A NetDaemon with ``factory`` set and busybox loaded; its containers, volumes and
    namespace go after."""
    workdir = qemu_workdir(prefix)
    d = NetDaemon(workdir, f'factory = "{factory}"\n')
    d.start()
    try:
        d.load_busybox()
        yield d
    finally:
        d.remove_containers()
        d.hyper("volume", "prune", "-f")
        d.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def netd(libvirt_up, guest_assets):
    workdir = qemu_workdir("hyperd-net-")
    d = NetDaemon(workdir)
    d.start()
    registry = None
    try:
        cfg = workdir / "registry.yml"
        cfg.write_text(
            f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {workdir / 'registry'}\n"
            f"http:\n  addr: {REGISTRY}\n"
        )
        registry = subprocess.Popen(
            ["nsenter", "-t", str(d.ns_pid), "-n", "docker-registry", "serve", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if (
                d.inside(
                    "python3",
                    "-c",
                    f"import urllib.request as u; u.urlopen('http://{REGISTRY}/v2/')",
                ).returncode
                == 0
            ):
                break
            time.sleep(0.1)
        res = d.inside(
            sys.executable,
            "-m",
            "tests.net.nginx_image",
            f"http://{REGISTRY}",
            NGINX.split("/", 1)[1],
        )
        assert res.returncode == 0, res.stderr.decode()
        d.load_busybox()
        yield d
    finally:
        d.remove_containers()
        d.docker("network", "prune", "-f")
        if registry:
            registry.terminate()
            registry.wait(10)
        d.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
