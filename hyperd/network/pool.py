"""Subnets for user-defined networks: checked when given, picked from pools when not.

The default pool is ``10.40.0.0/14`` cut into ``/24``s (1024 networks of 253 guests). It
overlaps none of: hyper's default bridge ``10.213.0.0/16``; Docker's ``172.17.0.0/16`` and
the ``172.16.0.0/12`` and ``192.168.0.0/16`` pools it allocates further networks from;
podman's ``10.88.0.0/16`` and the ``10.89.0.0``-``10.255.255.0`` pool of its networks;
libvirt's ``192.168.122.0/24``; the ``10.0.x``/``10.1.x`` networks home and office LANs and
VPNs use most; the carrier-grade NAT range ``100.64.0.0/10`` (Tailscale). Pools are
configurable (``default_address_pools`` in the daemon's config, as Docker's option).

A subnet is free when no other network has an overlapping one and no route or address of
the host (outside hyper's own bridges) overlaps it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from pyroute2 import IPRoute

from hyperd.errors import Conflict, HyperError, InvalidArgument

from .ipam import parse_subnet
from .records import NetworkRecord, NetworkSpec

Net = ipaddress.IPv4Network


@dataclass(frozen=True)
class AddressPool:
    """A base network cut into subnets of prefix ``size``."""

    base: str
    size: int

    def subnets(self) -> Iterable[Net]:
        return Net(self.base).subnets(new_prefix=self.size)


DEFAULT_POOLS = (AddressPool("10.40.0.0/14", 24),)


class PoolExhausted(HyperError):
    """No pool has a free subnet left."""

    status = 503


def parse_pools(items: list[dict]) -> tuple[AddressPool, ...]:
    """``[{"base": "10.40.0.0/14", "size": 24}, ...]`` from the config file."""
    out = []
    for item in items:
        base, size = item.get("base"), item.get("size")
        try:
            net = Net(str(base), strict=True)
        except ValueError as exc:
            raise InvalidArgument(f"default_address_pools: invalid base {base!r}: {exc}") from None
        if not isinstance(size, int) or not net.prefixlen <= size <= 30:
            raise InvalidArgument(
                f"default_address_pools: size of {base} must be /{net.prefixlen} to /30"
            )
        out.append(AddressPool(str(net), size))
    return tuple(out) or DEFAULT_POOLS


def host_networks(ours: set[str]) -> list[tuple[Net, str]]:
    """(network, interface) of every IPv4 route and address of the host, except those on
    the interfaces in ``ours`` (hyper's bridges) and the default route."""
    out = []
    with IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for addr in ipr.get_addr(family=2):
            name = names.get(addr["index"], "?")
            if name not in ours and name != "lo":
                net = Net(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}", strict=False)
                out.append((net, name))
        for route in ipr.get_routes(family=2, table=254):
            name = names.get(route.get_attr("RTA_OIF"), "?")
            if route["dst_len"] == 0 or name in ours:
                continue
            out.append((Net(f"{route.get_attr('RTA_DST')}/{route['dst_len']}"), name))
    return out


def check_spec(spec: NetworkSpec) -> tuple[str, str, str]:
    """(subnet, gateway, ip_range) of a spec with a subnet, each checked (400 naming it)."""
    net = parse_subnet(spec.subnet)
    gateway = spec.gateway
    if gateway:
        try:
            gw = ipaddress.IPv4Address(gateway)
        except ValueError:
            raise InvalidArgument(f"invalid gateway {gateway!r}") from None
        if gw not in net or gw in (net.network_address, net.broadcast_address):
            raise InvalidArgument(f"gateway {gateway} is not a host address of subnet {net}")
    else:
        gateway = str(net[1])
    if spec.ip_range:
        try:
            rng = Net(spec.ip_range, strict=True)
        except ValueError as exc:
            raise InvalidArgument(f"invalid ip-range {spec.ip_range!r}: {exc}") from None
        if not rng.subnet_of(net):
            raise InvalidArgument(f"ip-range {rng} is not within subnet {net}")
    return str(net), gateway, spec.ip_range


def check_aux(aux: dict[str, str], subnet: str, gateway: str) -> None:
    """Each auxiliary address (kept from containers, as Docker's) is a host address of the
    subnet other than the gateway (400 naming it)."""
    net = Net(subnet)
    for name, ip in aux.items():
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            raise InvalidArgument(f"AuxiliaryAddresses[{name}]: invalid address {ip!r}") from None
        if addr not in net or addr in (net.network_address, net.broadcast_address):
            raise InvalidArgument(
                f"AuxiliaryAddresses[{name}]: {ip} is not a host address of subnet {net}"
            )
        if ip == gateway:
            raise InvalidArgument(f"AuxiliaryAddresses[{name}]: {ip} is the gateway")


def check_free(subnet: str, networks: Iterable[NetworkRecord], host: list[tuple[Net, str]]):
    """Conflict when ``subnet`` overlaps another network's or a host route/address."""
    net = Net(subnet)
    for rec in networks:
        if rec.subnet and Net(rec.subnet).overlaps(net):
            raise Conflict(f"subnet {net} overlaps subnet {rec.subnet} of network {rec.name}")
    for other, ifname in host:
        if other.overlaps(net):
            raise Conflict(f"subnet {net} overlaps {other} on the host's interface {ifname}")


def pick(
    pools: Iterable[AddressPool], networks: list[NetworkRecord], host: list[tuple[Net, str]]
) -> str:
    """The first subnet of the pools that overlaps no network and no host route."""
    taken = [Net(r.subnet) for r in networks if r.subnet] + [n for n, _ in host]
    for pool in pools:
        for candidate in pool.subnets():
            if not any(candidate.overlaps(t) for t in taken):
                return str(candidate)
    raise PoolExhausted("no free subnet left in the address pools (default_address_pools)")
