"""iptables chains and rules, in a fresh network namespace per test."""

from __future__ import annotations

import pytest

from hyperd.errors import InvalidArgument
from hyperd.network.bridge import Bridge
from hyperd.network.firewall import Firewall, FirewallError

from .common import EchoServer, add_veth, tcp_roundtrip
from .netns import in_netns

SUBNET = "10.213.0.0/16"


def _all_rules(fw):
    rules = fw.rules()
    return rules["nat"] + rules["filter"]


def _setup_teardown():
    fw = Firewall("hyper0", SUBNET)
    assert _all_rules(fw) == []
    fw.setup()
    first = fw.rules()
    fw.setup()  # idempotent: no duplicates
    assert fw.rules() == first
    nat, flt = first["nat"], first["filter"]
    assert "-A POSTROUTING -j HYPER-POSTROUTING" in nat
    assert "-A HYPER-POSTROUTING -s 10.213.0.0/16 ! -o hyper0 -j MASQUERADE" in nat
    assert "-A PREROUTING -m addrtype --dst-type LOCAL -j HYPER-DNAT" in nat
    assert "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j HYPER-DNAT" in nat
    assert "-A FORWARD -j HYPER-FORWARD" in flt
    assert "-A HYPER-FORWARD -i hyper0 -j ACCEPT" in flt
    assert any(r.startswith("-A HYPER-FORWARD -o hyper0 -m conntrack") for r in flt)

    fw.add_port("tcp", "", 8080, "10.213.0.2", 80)
    fw.add_port("tcp", "", 8080, "10.213.0.2", 80)  # idempotent
    fw.add_port("udp", "127.0.0.1", 5353, "10.213.0.2", 53)
    dnat = [r for r in fw.rules()["nat"] if "DNAT --to" in r]
    assert len(dnat) == 2
    assert any("--dport 8080" in r and "10.213.0.2:80" in r and "! -i hyper0" in r for r in dnat)
    assert sorted(fw.ports()) == [
        ("tcp", "0.0.0.0", 8080, "10.213.0.2", 80),
        ("udp", "127.0.0.1", 5353, "10.213.0.2", 53),
    ]
    fw.remove_port("tcp", "", 8080, "10.213.0.2", 80)
    fw.remove_port("tcp", "", 8080, "10.213.0.2", 80)  # absent: fine
    assert fw.ports() == [("udp", "127.0.0.1", 5353, "10.213.0.2", 53)]

    fw.teardown()
    assert _all_rules(fw) == []
    fw.teardown()  # idempotent


def test_setup_idempotent_and_teardown_removes_everything():
    in_netns(_setup_teardown)


def _foreign_rules_untouched():
    import subprocess

    def ipt(*args):
        subprocess.run(["iptables", "-w", *args], check=True)

    ipt("-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.0/24", "-j", "MASQUERADE")
    ipt("-A", "FORWARD", "-i", "other0", "-j", "ACCEPT")
    before_nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True)
    fw = Firewall("hyper0", SUBNET)
    fw.setup()
    # FORWARD jump goes first, ahead of rules already there
    flt = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
    assert flt.splitlines()[1] == "-A FORWARD -j HYPER-FORWARD"
    # a second bridge shares the chains
    other = Firewall("hyper1", "10.214.0.0/16")
    other.setup()
    fw.teardown()
    other.add_port("tcp", "", 8080, "10.214.0.2", 80)  # the shared DNAT chain is still there
    other.remove_port("tcp", "", 8080, "10.214.0.2", 80)
    assert any("hyper1" in r for r in other.rules()["nat"])
    assert not any("hyper0" in r for rs in other.rules().values() for r in rs)
    other.teardown()
    after_nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True)
    assert after_nat.stdout == before_nat.stdout
    flt = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
    assert flt.splitlines() == ["-P FORWARD ACCEPT", "-A FORWARD -i other0 -j ACCEPT"]


def test_other_rules_untouched_and_chains_shared_between_bridges():
    in_netns(_foreign_rules_untouched)


def _dnat_forwards():
    # "host" address 10.55.0.1 and a stand-in "container" 10.213.0.2, both local here
    Bridge("hyper0", SUBNET).ensure()
    add_veth("host0", "10.55.0.1", 24)
    add_veth("ctr0", "10.213.0.2", 32)
    server = EchoServer("10.213.0.2", 80)
    fw = Firewall("hyper0", SUBNET)
    fw.setup()
    fw.add_port("tcp", "", 8080, "10.213.0.2", 80)
    payload = bytes(range(256)) * 100
    # nothing listens on 8080: only the OUTPUT DNAT rule can make this work
    assert tcp_roundtrip("10.55.0.1", 8080, payload) == b"echo:" + payload
    fw.remove_port("tcp", "", 8080, "10.213.0.2", 80)
    with pytest.raises(ConnectionRefusedError):
        tcp_roundtrip("10.55.0.1", 8080, b"x")
    server.close()


def test_dnat_rule_forwards_traffic():
    in_netns(_dnat_forwards)


def _errors():
    fw = Firewall("hyper0", SUBNET)
    with pytest.raises(FirewallError, match="setup"):
        fw.add_port("tcp", "", 8080, "10.213.0.2", 80)
    fw.setup()
    with pytest.raises(InvalidArgument):
        fw.add_port("sctp", "", 8080, "10.213.0.2", 80)
    with pytest.raises(InvalidArgument):
        fw.add_port("tcp", "", 0, "10.213.0.2", 80)
    with pytest.raises(InvalidArgument):
        fw.add_port("tcp", "nope", 80, "10.213.0.2", 80)
    with pytest.raises(FirewallError, match="not found"):
        Firewall("hyper0", SUBNET, iptables="/nonexistent/iptables").setup()
    fw.teardown()


def test_clear_errors():
    in_netns(_errors)
