"""IP allocation and MACs (SQLite only; each body still runs in a fresh namespace)."""

from __future__ import annotations

import ipaddress
import re

import pytest

from hyperd.errors import Conflict, InvalidArgument
from hyperd.network.ipam import IPAM, AddressPoolExhausted, mac_for

from .netns import in_netns


def _lowest_free(db):
    ipam = IPAM(db, "10.213.0.0/16")
    got = [ipam.allocate(f"c{i}") for i in range(3)]
    assert got == ["10.213.0.2", "10.213.0.3", "10.213.0.4"]
    assert ipam.allocate("c1") == "10.213.0.3"  # idempotent
    ipam.release("c1")
    assert ipam.lookup("c1") is None
    assert ipam.allocate("c9") == "10.213.0.3"  # lowest free is reused
    assert ipam.allocate("c10") == "10.213.0.5"
    assert ipam.owners() == {
        "c0": "10.213.0.2",
        "c9": "10.213.0.3",
        "c2": "10.213.0.4",
        "c10": "10.213.0.5",
    }


def test_lowest_free_and_reuse(tmp_path):
    in_netns(_lowest_free, tmp_path / "net.db")


def _fifty(db):
    ipam = IPAM(db, "10.213.0.0/16")
    ips = [ipam.allocate(f"owner-{i}") for i in range(50)]
    assert len(set(ips)) == 50
    net = ipaddress.IPv4Network("10.213.0.0/16")
    for ip in ips:
        addr = ipaddress.IPv4Address(ip)
        assert addr in net
        assert addr not in (net.network_address, net.network_address + 1, net.broadcast_address)
    # release every other one and re-allocate: still no duplicates
    for i in range(0, 50, 2):
        ipam.release(f"owner-{i}")
    again = [ipam.allocate(f"new-{i}") for i in range(25)]
    held = list(ipam.owners().values())
    assert len(held) == len(set(held)) == 50
    assert sorted(again, key=ipaddress.IPv4Address) == sorted(ips[0::2], key=ipaddress.IPv4Address)


def test_fifty_allocations_no_duplicates(tmp_path):
    in_netns(_fifty, tmp_path / "net.db")


def _persistence(db):
    first = IPAM(db, "10.213.0.0/16")
    a = first.allocate("a")
    b = first.allocate("b")
    first.close()
    second = IPAM(db, "10.213.0.0/16")
    assert second.lookup("a") == a and second.lookup("b") == b
    assert second.allocate("a") == a
    assert second.allocate("c") not in (a, b)
    second.release("a")
    third = IPAM(db, "10.213.0.0/16")
    assert third.lookup("a") is None
    assert third.allocate("d") == a


def test_persistence_across_instances(tmp_path):
    in_netns(_persistence, tmp_path / "net.db")


def _small_subnet(db):
    ipam = IPAM(db, "192.168.77.0/29")  # .1 gateway, .2-.6 for guests, .7 broadcast
    ips = [ipam.allocate(str(i)) for i in range(5)]
    assert ips == [f"192.168.77.{i}" for i in range(2, 7)]
    with pytest.raises(AddressPoolExhausted):
        ipam.allocate("one-too-many")


def test_exhaustion(tmp_path):
    in_netns(_small_subnet, tmp_path / "net.db")


@pytest.mark.parametrize("subnet", ["10.213.0.1/16", "10.213.0.0/31", "nonsense", "::/64"])
def test_bad_subnet(tmp_path, subnet):
    with pytest.raises(InvalidArgument):
        IPAM(tmp_path / "net.db", subnet)


def test_mac_is_stable_and_local():
    mac = mac_for("0123456789abcdef")
    assert mac == mac_for("0123456789abcdef")
    assert re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", mac)
    assert int(mac.split(":")[0], 16) & 0x02  # locally administered
    assert not int(mac.split(":")[0], 16) & 0x01  # unicast
    assert mac != mac_for("0123456789abcdeg")


def _reserved(db):
    ipam = IPAM(db, "10.60.0.0/29", "net1", reserved=["10.60.0.2", "10.60.0.4"])
    assert [ipam.allocate(f"c{i}") for i in range(3)] == ["10.60.0.3", "10.60.0.5", "10.60.0.6"]
    with pytest.raises(Conflict, match="reserved"):
        ipam.allocate("c9", "10.60.0.4")


def test_auxiliary_addresses_are_never_handed_out(tmp_path):
    """A network's AuxiliaryAddresses are skipped by the allocator and refused when asked."""
    in_netns(_reserved, tmp_path / "net.db")
