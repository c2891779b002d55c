"""User-defined networks: records, bridges, subnets, isolation, reconciliation; each test in
a fresh network namespace."""

from __future__ import annotations

import pytest
from pyroute2 import IPRoute

from hyperd.errors import Conflict, InvalidArgument, NotFound
from hyperd.network import Forbidden, Network, NetworkSpec, tap_name
from hyperd.network.bridge import links
from hyperd.network.pool import AddressPool, PoolExhausted

from .common import Guest, add_veth
from .netns import in_netns

A = "aaaaaaaaaaaa1111"
B = "bbbbbbbbbbbb2222"


def _addresses(name: str) -> list[str]:
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=name)[0]
        return [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=index)]


def _rules(net) -> list[str]:
    rules = net.firewall.rules()
    return rules["nat"] + rules["filter"]


def _create_pick_remove(db):
    add_veth("lan0", "10.40.0.9", 24)  # a host route in the pool's first subnet
    net = Network("hyper0", "10.213.0.0/16", db)
    net.setup()
    assert [(r.name, r.driver, r.builtin) for r in net.list()] == [
        ("bridge", "bridge", True),
        ("none", "null", True),
    ]
    one = net.create(NetworkSpec("one", labels={"k": "v"}))
    assert one.subnet == "10.40.1.0/24" and one.gateway == "10.40.1.1"  # 10.40.0/24 is taken
    assert one.bridge == "hyb" + one.id[:12] and len(one.bridge) == 15
    assert _addresses(one.bridge) == ["10.40.1.1/24"]
    two = net.create(NetworkSpec("two", subnet="172.30.0.0/16", gateway="172.30.0.254"))
    assert _addresses(two.bridge) == ["172.30.0.254/16"]
    three = net.create(NetworkSpec("three"))
    assert three.subnet == "10.40.2.0/24"
    assert net.get("one") == one and net.get(one.id[:10]) == one
    assert sorted(links("hyb")) == sorted([one.bridge, two.bridge, three.bridge])

    # a restarted daemon sees the same networks
    again = Network("hyper0", "10.213.0.0/16", db)
    assert [r.name for r in again.list()] == ["bridge", "none", "one", "two", "three"]
    assert again.get("two").gateway == "172.30.0.254" and again.get("one").labels == {"k": "v"}
    assert again.default.id == net.default.id

    for rec in (one, two, three):
        net.remove(rec.name)
    assert links("hyb") == []
    assert not any("hyb" in r for r in _rules(net))
    with pytest.raises(NotFound, match="network one not found"):
        net.get("one")
    net.teardown()


def test_networks_created_with_picked_or_given_subnets_and_removed(tmp_path):
    in_netns(_create_pick_remove, tmp_path / "net.db")


def _bad_requests(db):
    net = Network("hyper0", "10.213.0.0/16", db, pools_=(AddressPool("10.40.0.0/23", 24),))
    net.setup()
    net.create(NetworkSpec("taken", subnet="10.50.0.0/16"))
    cases = [
        (NetworkSpec("x", driver="overlay"), InvalidArgument, "driver 'overlay'"),
        (NetworkSpec("taken"), Conflict, "network with name taken already exists"),
        (NetworkSpec("bridge"), Conflict, "name bridge already exists"),
        (NetworkSpec("host"), InvalidArgument, "host network is not possible"),
        (NetworkSpec("bad/name"), InvalidArgument, "invalid network name"),
        (NetworkSpec("x", subnet="10.60.0.0/24", aux_addresses={"a": "10.61.0.5"}),
         InvalidArgument, r"AuxiliaryAddresses\[a\]: 10.61.0.5 is not a host address"),
        (NetworkSpec("x", subnet="10.60.0.0/24", aux_addresses={"gw": "10.60.0.1"}),
         InvalidArgument, "is the gateway"),
        (NetworkSpec("x", subnet="10.50.0.0/33"), InvalidArgument, "invalid subnet"),
        (NetworkSpec("x", subnet="10.50.0.1/24"), InvalidArgument, "host bits set"),
        (NetworkSpec("x", subnet="10.50.7.0/24"), Conflict, "overlaps subnet 10.50.0.0/16"),
        (NetworkSpec("x", subnet="10.213.9.0/24"), Conflict, "of network bridge"),
        (NetworkSpec("x", subnet="10.60.0.0/24", gateway="10.61.0.1"), InvalidArgument, "gateway"),
        (NetworkSpec("x", subnet="10.60.0.0/24", ip_range="10.60.1.0/25"), InvalidArgument,
         "ip-range"),
        (NetworkSpec("x", gateway="10.60.0.1"), InvalidArgument, "needs a subnet"),
    ]  # fmt: skip
    for spec, error, text in cases:
        with pytest.raises(error, match=text) as e:
            net.create(spec)
        assert e.value.status == {InvalidArgument: 400, Conflict: 409}[error]
    with pytest.raises(Forbidden, match="pre-defined"):
        net.remove("bridge")
    net.create(NetworkSpec("p1"))
    net.create(NetworkSpec("p2"))
    with pytest.raises(PoolExhausted, match="no free subnet"):
        net.create(NetworkSpec("p3"))
    assert [r.name for r in net.list()] == ["bridge", "none", "taken", "p1", "p2"]
    net.teardown()


def test_bad_requests_are_clear_errors_and_leave_nothing(tmp_path):
    in_netns(_bad_requests, tmp_path / "net.db")


def _endpoints(db):
    net = Network("hyper0", "10.213.0.0/16", db)
    net.setup()
    back = net.create(NetworkSpec("back", subnet="10.60.0.0/24", ip_range="10.60.0.128/25"))
    ep0 = net.attach(A, "bridge", device="eth0")
    ep1 = net.attach(A, "back", device="eth1")
    assert (ep1.ip, ep1.gateway, ep1.bridge, ep1.device) == (
        "10.60.0.128",
        "10.60.0.1",
        back.bridge,
        "eth1",
    )
    assert ep1.mac != ep0.mac and ep1.tap == tap_name(A, back.id)
    assert net.endpoints(A) == [ep0, ep1]
    assert net.attach(B, "back", ip="10.60.0.7").ip == "10.60.0.7"  # any address of the subnet
    with pytest.raises(Conflict, match="10.60.0.7 is already in use"):
        net.attach("cccccccccccc", "back", ip="10.60.0.7")
    with pytest.raises(InvalidArgument, match="not in the network's subnet"):
        net.attach("cccccccccccc", "back", ip="10.61.0.7")
    with pytest.raises(InvalidArgument, match="user defined networks only"):
        net.attach("cccccccccccc", "bridge", ip="10.213.0.50")
    with pytest.raises(InvalidArgument, match="no bridge"):
        net.attach("cccccccccccc", "none")
    with pytest.raises(Conflict, match="active endpoints"):
        net.remove("back")
    net.detach(A, "back")
    assert net.endpoints(A) == [ep0]
    net.detach(B)
    net.remove("back")
    net.teardown()


def test_endpoints_on_several_networks(tmp_path):
    in_netns(_endpoints, tmp_path / "net.db")


def _isolation(db):
    net = Network("hyper0", "10.213.0.0/16", db)
    net.setup()
    red = net.create(NetworkSpec("red", subnet="10.60.0.0/24"))
    blue = net.create(NetworkSpec("blue", subnet="10.61.0.0/24"))
    sealed = net.create(NetworkSpec("sealed", subnet="10.62.0.0/24", internal=True))
    add_veth("wan0", "10.70.0.1", 24)  # "the outside": a routed neighbour of the host
    guests = {
        "r1": Guest("gr1", red.bridge, "10.60.0.2/24", "10.60.0.1"),
        "r2": Guest("gr2", red.bridge, "10.60.0.3/24", "10.60.0.1"),
        "b1": Guest("gb1", blue.bridge, "10.61.0.2/24", "10.61.0.1"),
        "s1": Guest("gs1", sealed.bridge, "10.62.0.2/24", "10.62.0.1"),
        "d1": Guest("gd1", "hyper0", "10.213.0.2/16", "10.213.0.1"),
    }
    try:
        for g in guests.values():
            g.listen(80)
        r1 = guests["r1"]
        assert r1.reaches("10.60.0.3", 80)  # same network
        assert not r1.reaches("10.61.0.2", 80, 1)  # another network
        assert not r1.reaches("10.213.0.2", 80, 1)  # the default bridge
        assert not guests["d1"].reaches("10.60.0.2", 80, 1)
        assert not guests["b1"].reaches("10.62.0.2", 80, 1)  # into the internal network
        assert not guests["s1"].reaches("10.61.0.2", 80, 1)  # out of it
        nat = net.firewall.rules()["nat"]
        assert any("10.60.0.0/24" in r and "MASQUERADE" in r for r in nat)
        assert not any("10.62.0.0/24" in r for r in nat)  # internal: no NAT out
    finally:
        for g in guests.values():
            g.close()
    for name in ("red", "blue", "sealed"):
        net.remove(name)
    assert not any("ISOLATION" in r and "hyb" in r for r in _rules(net))
    net.teardown()
    assert _rules(net) == []


def test_networks_are_isolated_from_each_other(tmp_path):
    in_netns(_isolation, tmp_path / "net.db")


def _stray(db):
    net = Network("hyper0", "10.213.0.0/16", db)
    net.setup()
    kept = net.create(NetworkSpec("kept", subnet="10.60.0.0/24"))
    gone = net.create(NetworkSpec("gone", subnet="10.61.0.0/24"))
    net.attach(A, "kept")
    net.attach(B, "gone")
    net.close()
    # a crash lost the record of "gone" (as if the daemon died inside remove)
    net.records.delete(gone)
    net = Network("hyper0", "10.213.0.0/16", db)
    net.setup()
    done = net.reconcile({A})
    assert done["bridges"] == [gone.bridge]
    assert links("hyb") == [kept.bridge]
    assert links("hyt") == [tap_name(A, kept.id)]
    assert net._db.execute("SELECT owner FROM endpoints").fetchall() == [(A,)]
    assert not any(gone.bridge in r for r in _rules(net))
    net.teardown()


def test_reconcile_removes_bridges_of_networks_that_are_gone(tmp_path):
    in_netns(_stray, tmp_path / "net.db")
