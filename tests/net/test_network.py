"""Networking against real VMs, all inside the test's own network namespace."""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import time
import uuid

import pytest

from .conftest import NGINX

pytestmark = pytest.mark.vm
PAGE = b"nginx in a hyper VM"


def _ok(res) -> str:
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    return res.stdout.decode()


def _name() -> str:
    return f"n-{uuid.uuid4().hex[:8]}"


def _get(netd, url: str, timeout: float = 30) -> bytes:
    """HTTP GET from inside the namespace, retried while the server comes up."""
    code = (
        "import sys, urllib.request as u\n"
        f"print(u.urlopen({url!r}, timeout=5).read().decode(), end='')"
    )
    deadline = time.time() + timeout
    while True:
        res = netd.inside(sys.executable, "-c", code)
        if res.returncode == 0 or time.time() > deadline:
            return res.stdout if res.returncode == 0 else b""
        time.sleep(0.3)


def _refused(netd, port: int, timeout: float = 15) -> bool:
    code = (
        "import socket\ns = socket.socket()\ns.settimeout(2)\n"
        f"raise SystemExit(0 if s.connect_ex(('127.0.0.1', {port})) else 1)"
    )
    deadline = time.time() + timeout
    while time.time() < deadline:
        if netd.inside(sys.executable, "-c", code).returncode == 0:
            return True
        time.sleep(0.3)
    return False


def _inspect(netd, name) -> dict:
    return json.loads(_ok(netd.hyper("inspect", name)))[0]


def test_nginx_published_port_exec_and_stop(netd):
    name = _name()
    _ok(netd.hyper("run", "-d", "--name", name, "-p", "8080:80", NGINX))
    assert PAGE in _get(netd, "http://127.0.0.1:8080/")  # loopback: the userland proxy
    ip = _inspect(netd, name)["NetworkSettings"]["IPAddress"]
    assert ip.startswith("10.213.")
    assert PAGE in _get(netd, f"http://{ip}/")  # straight to the VM over the bridge
    assert "80/tcp -> 0.0.0.0:8080" in _ok(netd.hyper("port", name))
    assert "0.0.0.0:8080->80/tcp" in _ok(netd.hyper("ps"))
    page = _ok(netd.hyper("exec", name, "wget", "-qO-", "http://127.0.0.1/"))
    assert PAGE.decode() in page
    _ok(netd.hyper("stop", "-t", "2", name))
    assert _refused(netd, 8080)
    _ok(netd.hyper("rm", name))


def test_random_host_port_and_port_in_use(netd):
    a, b = _name(), _name()
    _ok(netd.hyper("run", "-d", "--name", a, "-p", "80", NGINX))
    host_port = int(_ok(netd.hyper("port", a, "80")).strip().rsplit(":", 1)[1])
    assert PAGE in _get(netd, f"http://127.0.0.1:{host_port}/")
    res = netd.hyper("run", "-d", "--name", b, "-p", f"{host_port}:80", NGINX)
    assert res.returncode == 125 and b"already in use" in res.stderr
    assert _inspect(netd, b)["State"]["Status"] == "created"  # refused before its VM booted
    _ok(netd.hyper("rm", "-f", a, b))


def test_udp_published_port(netd):
    name = _name()
    _ok(netd.hyper("run", "-d", "--name", name, "-p", "9999:9999/udp", NGINX, "udp-echo", "9999"))
    code = (
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(1)\n"
        "for _ in range(30):\n"
        "    s.sendto(b'over-udp', ('127.0.0.1', 9999))\n"
        "    try:\n        print(s.recv(100).decode()); break\n"
        "    except TimeoutError:\n        pass\n"
    )
    res = netd.inside(sys.executable, "-c", code, timeout=60)
    assert _ok(res) == "over-udp\n"
    _ok(netd.hyper("rm", "-f", name))


def test_containers_reach_each_other_by_name_and_link(netd):
    web = _name()
    _ok(netd.hyper("run", "-d", "--name", web, NGINX))
    out = _ok(netd.hyper("run", "--rm", NGINX, "wget", "-qO-", f"http://{web}/"))
    assert PAGE.decode() in out
    out = _ok(
        netd.hyper("run", "--rm", "--link", f"{web}:www", NGINX, "wget", "-qO-", "http://www/")
    )
    assert PAGE.decode() in out
    _ok(netd.hyper("rm", "-f", web))


def test_network_none_has_only_loopback(netd):
    out = _ok(netd.hyper("run", "--rm", "--network", "none", NGINX, "ls", "/sys/class/net"))
    assert out.split() == ["lo"]
    out = _ok(netd.hyper("run", "--rm", NGINX, "ls", "/sys/class/net"))
    assert sorted(out.split()) == ["eth0", "lo"]


def _leftovers(netd) -> dict:
    links = netd.inside("ip", "-o", "link").stdout.decode()
    dnat = netd.inside("iptables", "-t", "nat", "-S", "HYPER-DNAT").stdout.decode()
    with sqlite3.connect(netd.root / "network.db") as db:
        ips = [row[0] for row in db.execute("SELECT ip FROM endpoints")]
    return {
        "taps": [w.rstrip(":") for w in links.split() if w.startswith("hyt")],
        "dnat": [r for r in dnat.splitlines() if r.startswith("-A")],
        "ips": ips,
    }


def test_eight_cycles_leave_no_tap_address_or_rule(netd):
    """Run with a published port and rm -f, eight times over (a leak shows from the first;
    the repeats reuse the address, the tap name and the host port)."""
    for _ in range(8):
        name = _name()
        _ok(netd.hyper("run", "-d", "--name", name, "-p", "8181:80", NGINX))
        _ok(netd.hyper("rm", "-f", name))
    deadline = time.time() + 15
    while time.time() < deadline and any(_leftovers(netd).values()):
        time.sleep(0.5)
    assert _leftovers(netd) == {"taps": [], "dnat": [], "ips": []}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_daemon_restart_keeps_published_ports(netd, sig):
    name = _name()
    _ok(netd.hyper("run", "-d", "--name", name, "-p", "8282:80", NGINX))
    assert PAGE in _get(netd, "http://127.0.0.1:8282/")
    netd.kill_hyperd(sig)
    netd.relaunch()
    assert PAGE in _get(netd, "http://127.0.0.1:8282/")
    assert _inspect(netd, name)["State"]["Running"]
    _ok(netd.hyper("rm", "-f", name))


def test_a_chosen_mac_address_is_the_vms_and_outlives_a_daemon_restart(netd):
    """Config.MacAddress (docker run --mac-address) is the VM NIC's address and inspect's."""
    mac = "02:42:ac:11:00:0a"
    c = netd.client().containers.run(NGINX, ["sleep", "300"], detach=True, mac_address=mac)
    try:
        c.reload()
        assert c.attrs["NetworkSettings"]["MacAddress"] == mac
        assert c.exec_run(["cat", "/sys/class/net/eth0/address"]).output == f"{mac}\n".encode()
        netd.kill_hyperd(signal.SIGKILL)
        netd.relaunch()
        c.reload()
        assert c.attrs["NetworkSettings"]["MacAddress"] == mac
        assert c.exec_run(["cat", "/sys/class/net/eth0/address"]).output == f"{mac}\n".encode()
    finally:
        c.remove(force=True)


def test_sigterm_while_a_removed_containers_vm_goes_down_lets_it_go(netd):
    """SIGTERM just after a --rm container was removed, while its VM is still going down
    in the background: the daemon lets that end before it exits, so no VM, tap or
    container directory is left for the next start to sweep."""
    res = netd.hyper("run", "-d", "--rm", "busybox", "true")
    _ok(res)
    cid = res.stdout.decode().strip()
    deadline = time.time() + 60
    while time.time() < deadline and netd.hyper("inspect", cid).returncode == 0:
        time.sleep(0.05)
    netd.kill_hyperd(signal.SIGTERM)
    try:
        assert not [t for t in _leftovers(netd)["taps"] if cid[:8] in t]
        assert not [vm for vm in netd.vms() if cid[:12] in vm]
        assert not (netd.root / "containers" / cid).exists()
    finally:
        netd.relaunch()
