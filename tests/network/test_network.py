"""The Network facade end to end, in a fresh network namespace per test."""

from __future__ import annotations

import socket

import pytest
from pyroute2 import IPRoute

from hyperapi.portspec import PortBinding
from hyperd.errors import Conflict, InvalidArgument
from hyperd.network import Network, parse_ports, tap_name

from .common import EchoServer, add_veth, tcp_roundtrip, udp_roundtrip
from .netns import in_netns

A = "aaaaaaaaaaaa1111"
B = "bbbbbbbbbbbb2222"


def _taps():
    with IPRoute() as ipr:
        return sorted(
            n for link in ipr.get_links() if (n := link.get_attr("IFLA_IFNAME")).startswith("hyt")
        )


def _dnat_rules(net):
    return [r for r in net.firewall.rules()["nat"] if "--to-destination" in r]


def _attach_publish_detach(db):
    net = Network("hyper0", "10.213.0.0/16", db)
    net.setup()
    net.setup()
    ep = net.attach(A)
    tap = tap_name(A, net.default.id)
    assert (ep.ip, ep.prefix, ep.gateway, ep.tap, ep.name, ep.bridge) == (
        "10.213.0.2",
        16,
        "10.213.0.1",
        tap,
        "bridge",
        "hyper0",
    )
    assert ep.netmask == "255.255.0.0" and ep.mac.startswith("52:54:00:")
    assert net.attach(A) == ep
    assert net.endpoint(A) == ep
    assert net.bridge.taps() == [tap]

    # the "VM": its address made local here, servers on it
    add_veth("ctr0", ep.ip)
    add_veth("host0", "10.55.0.1", 24)
    tcp = EchoServer(ep.ip, 80)
    udp = EchoServer(ep.ip, 53, proto="udp")
    bound = net.publish(A, parse_ports(["8080:80", "127.0.0.1::53/udp"]))
    assert bound[0] == PortBinding("tcp", "0.0.0.0", 8080, 80)
    assert bound[1].proto == "udp" and bound[1].host_port > 0
    assert net.ports(A) == bound
    assert len(_dnat_rules(net)) == 2
    payload = bytes(range(256)) * 4096
    assert tcp_roundtrip("127.0.0.1", 8080, payload) == b"echo:" + payload  # proxy
    assert tcp_roundtrip("10.55.0.1", 8080, payload) == b"echo:" + payload  # DNAT
    assert udp_roundtrip("127.0.0.1", bound[1].host_port, b"q") == b"echo:q"

    # in use, by us or anyone: Conflict, nothing left behind
    net.attach(B)
    with pytest.raises(Conflict, match="8080/tcp is already in use"):
        net.publish(B, parse_ports(["9000:90", "8080:80"]))
    assert net.ports(B) == [] and len(_dnat_rules(net)) == 2
    s = socket.socket()
    s.bind(("0.0.0.0", 9000))  # 9000 was freed again
    s.close()
    with pytest.raises(InvalidArgument, match="attach"):
        net.publish("nobody", parse_ports(["1234"]))

    net.detach(A)
    net.detach(A)  # idempotent
    assert net.ports(A) == [] and _dnat_rules(net) == []
    assert net.endpoint(A) is None
    with pytest.raises(ConnectionRefusedError):
        tcp_roundtrip("127.0.0.1", 8080, b"x")
    net.detach(B)
    assert _taps() == []
    net.teardown()
    assert net.firewall.rules() == {"nat": [], "filter": []}
    assert not net.bridge.exists()
    tcp.close()
    udp.close()


def test_attach_publish_detach(tmp_path):
    in_netns(_attach_publish_detach, tmp_path / "net.db")


def _reconcile(db):
    # a daemon that "crashed": it left taps, addresses, records and rules
    net = Network("hyper0", "10.213.0.0/16", db)
    net.setup()
    for owner in (A, B):
        net.attach(owner)
    net.publish(A, parse_ports(["8080:80"]))
    net.publish(B, parse_ports(["8081:80", "5353:53/udp"]))
    ip_b = net.endpoint(B).ip
    net.firewall.add_port("tcp", "", 7777, "10.213.9.9", 77)  # a rule with no record
    net.close()  # proxies gone with the process; everything else stays

    # the restarted daemon: only A is alive
    net = Network("hyper0", "10.213.0.0/16", db)
    net.setup()
    done = net.reconcile({A})
    assert done["owners"] == [B] and done["restored"] == [A]
    assert done["rules"] == ["0.0.0.0:7777/tcp->10.213.9.9:77"]
    assert _taps() == [tap_name(A, net.default.id)]
    assert set(net.ipam.owners()) == {A}
    assert all("8080" in r for r in _dnat_rules(net)) and len(_dnat_rules(net)) == 1
    assert net.ports(B) == []
    # A's proxy is back, B's address is free again
    add_veth("ctr0", net.endpoint(A).ip)
    server = EchoServer(net.endpoint(A).ip, 80)
    assert tcp_roundtrip("127.0.0.1", 8080, b"alive") == b"echo:alive"
    assert net.attach("cccccccccccc").ip == ip_b
    # nothing alive: everything goes
    done = net.reconcile(set())
    assert sorted(done["owners"]) == sorted([A, "cccccccccccc"])
    assert _taps() == [] and _dnat_rules(net) == [] and net.ipam.owners() == {}
    server.close()
    net.teardown()


def test_reconcile_removes_stale_and_restores_live(tmp_path):
    in_netns(_reconcile, tmp_path / "net.db")


def _foreign_taps(db):
    net = Network("hyper0", "10.213.0.0/16", db)
    net.setup()
    other = Network("hyper1", "10.214.0.0/16", str(db) + ".other")
    other.setup()
    other.attach("ffffffffffff")
    net.attach(A)
    net.reconcile(set())
    # the other daemon's tap is not ours to delete
    assert _taps() == [tap_name("ffffffffffff", other.default.id)]
    other.teardown()
    net.teardown()


def test_reconcile_leaves_other_bridges_alone(tmp_path):
    in_netns(_foreign_taps, tmp_path / "net.db")


def _cycles(db):
    net = Network("hyper0", "10.213.0.0/16", db)
    net.setup()
    base = net.firewall.rules()
    with IPRoute() as ipr:
        links_before = len(ipr.get_links())
    for i in range(20):
        owner = f"{i:04d}cycle0000000000"
        ep = net.attach(owner)
        assert ep.ip == "10.213.0.2"
        net.publish(owner, parse_ports(["8080:80", "8081:81/udp", "82"]))
        net.detach(owner)
    assert _taps() == []
    assert net.firewall.rules() == base
    assert net.ipam.owners() == {}
    assert net.ports("0000cycle0000000000") == []
    with IPRoute() as ipr:
        assert len(ipr.get_links()) == links_before
    net.teardown()
    assert net.firewall.rules() == {"nat": [], "filter": []}


def test_twenty_cycles_leave_nothing_behind(tmp_path):
    in_netns(_cycles, tmp_path / "net.db")


def _spare_becomes_endpoint(db):
    net = Network("hyper0", "10.213.0.0/16", db)
    net.setup()
    spare, gone = net.spare_nic("0123456789ab"), net.spare_nic("ba9876543210")
    assert _taps() == sorted([spare.tap, gone.tap]) and spare.tap == "hytpool01234567"
    assert spare.tap not in net.bridge.taps()  # on no bridge until it has a network
    ep = net.attach(A, spare=spare)
    assert (ep.mac, ep.tap) == (spare.mac, tap_name(A, net.default.id))
    assert net.bridge.taps() == [ep.tap] and spare.tap not in _taps()
    # a second owner may not take the same MAC; nothing is left of its try
    with pytest.raises(Conflict, match="MAC address"):
        net.attach(B, spare=spare)
    assert net.endpoint(B) is None
    assert net.drop_stray_spares({"ba987654"}) == [] and gone.tap in _taps()
    assert net.drop_stray_spares(set()) == [gone.tap]
    net.detach(A)
    assert _taps() == []
    net.teardown()


def test_a_spare_nic_becomes_an_owners_endpoint(tmp_path):
    """A pool VM's NIC (a tap on no bridge) becomes a container's endpoint: its MAC kept,
    its tap renamed to the owner's and bridged; a MAC in use is refused; the spare taps of
    gone VMs are dropped, others kept."""
    in_netns(_spare_becomes_endpoint, tmp_path / "net.db")
