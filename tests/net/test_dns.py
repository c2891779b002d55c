"""The embedded DNS server of user-defined networks, asked by busybox's nslookup (which
reads no /etc/hosts) in real VMs, inside the test's own network namespace."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

import pytest

from tests.conftest import ROOT

from .test_network import _inspect, _ok

pytestmark = pytest.mark.vm

# From the namespace's own address on the bridge: garbage first (dropped), then a query.
PROBE = """import socket, sys
from dnslib import DNSRecord
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(20)
s.sendto(b"\\xff" * 40, (sys.argv[1], 53))
s.sendto(DNSRecord.question(sys.argv[2]).pack(), (sys.argv[1], 53))
print(DNSRecord.parse(s.recv(4096)).header.rcode)
"""
UPSTREAM = "127.0.0.1"  # the stand-in upstream server, in the namespace (dns_upstream.py)


@pytest.fixture
def upstream(netd):
    proc = subprocess.Popen(
        ["nsenter", "-t", str(netd.ns_pid), "-n", sys.executable, "-m", "tests.net.dns_upstream"]
        + [UPSTREAM],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout.readline() == b"ready\n"
        yield UPSTREAM
    finally:
        proc.kill()
        proc.wait(10)


def _lookup(netd, container: str, name: str) -> tuple[int, str]:
    res = netd.docker("exec", container, "nslookup", name, timeout=120)
    return res.returncode, res.stdout.decode() + res.stderr.decode()


def _addresses(out: str) -> list[str]:
    """The answers' addresses (busybox prints the server's as ``Address:\\tIP:53``)."""
    lines = out.split("Name:", 1)[-1].splitlines() if "Name:" in out else []
    return [ln.split()[-1] for ln in lines if ln.startswith("Address:")]


def test_names_aliases_links_and_upstream(netd, upstream):
    """A asks for B (started after A) by name, network alias, short ID and A's own link
    alias for it (docker-py's test_create_with_links), in any case and with a trailing dot;
    other names go to A's --dns (its upstream); a query from no container is refused;
    after hyperd's kill -9 the restored network answers again."""
    u = uuid.uuid4().hex[:6]
    net, a, b = f"dns-{u}", f"asker-{u}", f"target-{u}"
    _ok(netd.docker("network", "create", "--subnet", "10.93.0.0/24", net))
    client = netd.client()
    try:
        api = client.api
        asker = api.create_container(
            "busybox",
            "sleep 600",
            name=a,
            host_config=api.create_host_config(network_mode=net, dns=[upstream]),
            networking_config=api.create_networking_config(
                {net: api.create_endpoint_config(links=[(b, "bar")])}
            ),
        )
        api.start(asker)
        run_b = ("run", "-d", "--name", b, "--network", net, "--network-alias", "db")
        _ok(netd.docker(*run_b, "busybox", "sleep", "600"))
        b_ip = _inspect(netd, b)["NetworkSettings"]["Networks"][net]["IPAddress"]
        b_id = _inspect(netd, b)["Id"][:12]
        resolv = _ok(netd.docker("exec", a, "cat", "/etc/resolv.conf"))
        assert "nameserver 10.93.0.1" in resolv.splitlines(), resolv
        for name in (b, "db", "bar", b_id, "BAR.", b.upper()):
            code, out = _lookup(netd, a, name)
            assert code == 0 and _addresses(out) == [b_ip], (name, out)
        code, out = _lookup(netd, a, "up.example")
        assert code == 0 and _addresses(out) == ["10.9.9.9"], out  # forwarded
        code, out = _lookup(netd, a, f"nosuch-{u}")
        assert code != 0 and "NXDOMAIN" in out, out  # the upstream's answer, passed on
        code, out = _lookup(netd, b, "bar")
        assert code != 0, out  # a link alias is its asker's only

        res = netd.inside(sys.executable, "-c", PROBE, "10.93.0.1", b)
        assert res.stdout.split() == [b"5"], res  # REFUSED: the host is no container of net

        netd.kill_hyperd(signal.SIGKILL)
        netd.relaunch()
        a_ip = _inspect(netd, a)["NetworkSettings"]["Networks"][net]["IPAddress"]
        code, out = _lookup(netd, b, a)
        assert code == 0 and _addresses(out) == [a_ip], out
    finally:
        netd.docker("rm", "-f", a, b)
        netd.docker("network", "rm", net)


def test_internal_network_answers_its_names_and_forwards_nothing(netd, upstream):
    """On an --internal network the embedded server answers the network's names but asks
    no upstream, not even the container's own --dns (as Docker's resolver there)."""
    u = uuid.uuid4().hex[:6]
    net, name = f"dnsint-{u}", f"inner-{u}"
    _ok(netd.docker("network", "create", "--internal", "--subnet", "10.94.0.0/24", net))
    try:
        script = f"nslookup {name}; echo rc=$?; nslookup up.example; echo rc=$?"
        run = ("run", "--rm", "--name", name, "--network", net, "--dns", upstream)
        out = _ok(netd.docker(*run, "busybox", "sh", "-c", script))
        first, second = out.split("rc=")[0], out.split("rc=")[1]
        assert _addresses(first) == ["10.94.0.2"] and out.count("rc=0") == 1, out
        assert "SERVFAIL" in second and "10.9.9.9" not in out, out
    finally:
        netd.docker("rm", "-f", name)
        netd.docker("network", "rm", net)
