"""The VM pool (``factory = "cache:1"``): a container started in a pool VM behaves as one
whose VM booted for it (hostname, network, published port, disks, volume, exit code); the
pool refills; a container that does not fit boots its own VM; a daemon restart rebuilds
the pool and leaks no VM or tap. Real daemon in its own network namespace, real VMs."""

from __future__ import annotations

import json
import shutil
import sys
import time

import pytest

from tests.net.conftest import NetDaemon
from tests.workdir import qemu_workdir

pytestmark = pytest.mark.vm
POOL_WAIT = 120  # seconds for a pool VM to boot under TCG on a busy machine


@pytest.fixture(scope="module")
def poold(libvirt_up, guest_assets):
    workdir = qemu_workdir("hyperd-pool-")
    d = NetDaemon(workdir, 'factory = "cache:1"\n')
    d.start()
    try:
        d.load_busybox()
        yield d
    finally:
        d.remove_containers()
        d.hyper("volume", "prune", "-f")
        d.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)


def _pool(d: NetDaemon) -> dict:
    res = d.hyper("info", "--format", "{{json .Hyper.VMPool}}")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _wait_ready(d: NetDaemon) -> None:
    deadline = time.time() + POOL_WAIT
    while _pool(d)["Ready"] < 1:
        assert time.time() < deadline, "no pool VM became ready"
        time.sleep(0.5)


def _vms(d: NetDaemon) -> list[str]:
    res = d.inside("nsenter", "-t", str(d.ns_pid), "-m", "virsh", "list", "--name")
    return [n for n in res.stdout.decode().split() if n]


def _inspect(d: NetDaemon, name: str, fmt: str) -> str:
    return d.hyper("inspect", "--format", fmt, name).stdout.decode().strip()


def test_a_container_from_the_pool_behaves_as_a_cold_one(poold):
    """The same command in a pool VM and in a VM booted for it (a non-default memory size
    does not fit the pool) prints the same things: its own hostname, an address on the
    bridge with the gateway reachable, the image's files, a volume it wrote to; and the
    container's exit code comes back. The pool VM is the container's (inspect's Hyper.VM)
    and the pool refills."""
    _wait_ready(poold)
    script = (
        "hostname; cat /etc/hostname; ip -4 -o addr show eth0 | wc -l; "
        "ping -c1 -W5 $(ip route | awk '/default/ {print $3}') >/dev/null && echo gw-ok; "
        "ls /bin/busybox; echo data > /vol/f; cat /vol/f; exit 7"
    )
    out = {}
    for how, extra in (("pool", []), ("cold", ["-m", "200m"])):
        name = f"pool-{how}"
        res = poold.hyper(
            "run", "--name", name, "-v", f"vol-{how}:/vol", *extra, "busybox", "sh", "-c", script
        )
        assert res.returncode == 7, (how, res.stderr)
        vm = _inspect(poold, name, "{{.Hyper.VM}}")
        cid = _inspect(poold, name, "{{.Id}}")
        lines = res.stdout.decode().splitlines()
        assert lines[0] == lines[1] == cid[:12], (how, lines)
        out[how] = (lines[2:], vm)
        poold.hyper("rm", name)
    assert out["pool"][0] == out["cold"][0] == ["1", "gw-ok", "/bin/busybox", "data"], out
    assert out["pool"][1].startswith("hyper-pool-"), out
    assert not out["cold"][1].startswith("hyper-pool-"), out
    _wait_ready(poold)


def test_a_published_port_answers_from_a_pool_vm(poold):
    """-p works in a pool VM (its NIC became the container's endpoint on the bridge)."""
    _wait_ready(poold)
    res = poold.hyper(
        "run", "-d", "--name", "pool-web", "-p", "18080:80", "busybox",
        "sh", "-c", "echo hello-pool > /i.html; httpd -f -p 80 -h /",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    try:
        assert _inspect(poold, "pool-web", "{{.Hyper.VM}}").startswith("hyper-pool-")
        code = "import urllib.request as u; print(u.urlopen(%r, timeout=5).read().decode())"
        deadline = time.time() + 60
        while True:
            got = poold.inside(sys.executable, "-c", code % "http://127.0.0.1:18080/i.html")
            if got.stdout == b"hello-pool\n\n" or time.time() > deadline:
                break
            time.sleep(0.5)
        assert got.stdout == b"hello-pool\n\n", got
    finally:
        poold.hyper("rm", "-f", "pool-web")


def test_a_restart_rebuilds_the_pool_and_leaks_nothing(poold):
    """SIGTERM: the pool VMs go with the daemon (a running container stays); the next
    daemon boots a new pool; no VM or spare tap of the old pool is left."""
    _wait_ready(poold)
    res = poold.hyper("run", "-d", "--name", "pool-stays", "busybox", "sleep", "600")
    assert res.returncode == 0, res.stderr
    try:
        kept = _inspect(poold, "pool-stays", "{{.Hyper.VM}}")
        _wait_ready(poold)
        old_pool = [v for v in _vms(poold) if v.startswith("hyper-pool-") and v != kept]
        assert len(old_pool) == 1, _vms(poold)
        poold.kill_hyperd(15)
        assert old_pool[0] not in _vms(poold)
        poold.relaunch()
        assert _inspect(poold, "pool-stays", "{{.State.Running}}") == "true"
        _wait_ready(poold)
        vms = _vms(poold)
        assert kept in vms and old_pool[0] not in vms, vms
        assert len([v for v in vms if v.startswith("hyper-pool-")]) == 2, vms  # kept + new
        taps = poold.inside("ip", "-o", "link", "show").stdout.decode()
        assert taps.count("hytpool") == 1, taps
        exec_res = poold.hyper("exec", "pool-stays", "hostname")
        assert exec_res.returncode == 0, exec_res.stderr
    finally:
        poold.hyper("rm", "-f", "pool-stays")
