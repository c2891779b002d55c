"""The bridge and taps, in a fresh network namespace per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyroute2 import IPRoute

from hyperd.errors import Conflict, InvalidArgument
from hyperd.network.bridge import Bridge, bridge_name, enable_ip_forward, tap_name

from .netns import in_netns

CID = "0123456789abcdef0123456789abcdef"
NET = "fedcba9876543210"
TAP = tap_name(CID, NET)


def _bridge_up():
    br = Bridge("hyper0", "10.213.0.0/16")
    assert not br.exists()
    br.ensure()
    br.ensure()  # idempotent
    assert br.exists() and br.is_up()
    assert br.addresses() == ["10.213.0.1/16"]
    with IPRoute() as ipr:
        link = ipr.get_links(ipr.link_lookup(ifname="hyper0")[0])[0]
        assert link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == "bridge"
    br.delete()
    assert not br.exists()


def test_bridge_created_with_gateway_and_up():
    in_netns(_bridge_up)


def _ip_forward():
    enable_ip_forward()
    return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()


def test_ip_forward_set_inside_namespace_only():
    host_before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    assert in_netns(_ip_forward) == "1"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_before


def _tap_lifecycle():
    br = Bridge("hyper0", "10.213.0.0/16")
    br.ensure()
    name = br.create_tap(TAP, "52:54:00:aa:bb:cc")
    assert name == "hyt01234567fedc" and len(name) == 15  # container ID[:8] + network ID[:4]
    assert br.create_tap(TAP, "52:54:00:aa:bb:cc") == name  # idempotent
    assert br.taps() == [name]
    assert br.tap_master(name) == "hyper0"
    with IPRoute() as ipr:
        link = ipr.get_links(ipr.link_lookup(ifname=name)[0])[0]
        assert link["flags"] & 1  # IFF_UP
        assert link.get_attr("IFLA_ADDRESS") == "fe:54:00:aa:bb:cc"
        data = link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
        assert data.get_attr("IFLA_TUN_TYPE") == 2  # tap
        assert data.get_attr("IFLA_TUN_PERSIST") == 1
        assert data.get_attr("IFLA_TUN_PI") == 0
    # the bridge keeps its own MAC whatever the ports
    with IPRoute() as ipr:
        bmac = ipr.get_links(ipr.link_lookup(ifname="hyper0")[0])[0].get_attr("IFLA_ADDRESS")
    assert bmac != "fe:54:00:aa:bb:cc"
    br.delete_tap(TAP)
    assert br.taps() == []
    assert br.tap_master(name) is None
    br.delete_tap(name)  # already gone: fine


def test_tap_created_attached_removed():
    in_netns(_tap_lifecycle)


def _tap_needs_bridge():
    from hyperd.network.bridge import NetworkError

    with pytest.raises(NetworkError, match="does not exist"):
        Bridge("hyper0").create_tap(TAP)


def test_tap_without_bridge_is_a_clear_error():
    in_netns(_tap_needs_bridge)


def _overlap():
    with IPRoute() as ipr:
        ipr.link("add", ifname="lan0", kind="veth", peer="lan1")
        ipr.addr("add", index=ipr.link_lookup(ifname="lan0")[0], address="10.213.5.9", prefixlen=24)
    with pytest.raises(Conflict, match="overlaps 10.213.5.0/24 on interface lan0"):
        Bridge("hyper0", "10.213.0.0/16").ensure()
    Bridge("hyper0", "10.214.0.0/16").ensure()


def test_subnet_overlapping_another_interface_is_refused():
    in_netns(_overlap)


def _not_a_bridge():
    with IPRoute() as ipr:
        ipr.link("add", ifname="hyper0", kind="veth", peer="other0")
    with pytest.raises(Conflict, match="not a bridge"):
        Bridge("hyper0").ensure()


def test_existing_non_bridge_interface_is_refused():
    in_netns(_not_a_bridge)


@pytest.mark.parametrize("owner", ["", "a/b", "a b", "x" * 5 + ":"])
def test_bad_owner(owner):
    with pytest.raises(InvalidArgument):
        tap_name(owner, NET)
    with pytest.raises(InvalidArgument):
        tap_name(CID, owner)


def test_bridge_names_fit_and_are_found_by_prefix():
    """A user network's bridge: hyb + 12 characters of its ID, the kernel's 15."""
    name = bridge_name("abcdef0123456789" * 4)
    assert name == "hybabcdef012345" and len(name) == 15


@pytest.mark.parametrize("name", ["", "x" * 16, "hytfoo", "a b"])
def test_bad_bridge_name(name):
    with pytest.raises(InvalidArgument):
        Bridge(name)
