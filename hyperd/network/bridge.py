"""The host bridge and one tap device per VM, through netlink (pyroute2), never `ip`.

Each network has a bridge: the default network's is ``hyper0`` (configurable), a user
network's is ``hyb`` + the first 12 characters of its ID (15 characters, the kernel's limit),
so a bridge whose network is gone can be found by name. The bridge carries the gateway
address (by default the first host of the subnet, ``10.213.0.1/16``); it is the guests'
default route, and the host NATs their traffic out (see firewall.py). Each VM gets one
persistent tap per network it joins, named ``hyt`` + 8 characters of its container ID + 4 of
the network's ID (15 characters), enslaved to that network's bridge and up.

Why ``<interface type='ethernet'>`` with our own tap, not libvirt's ``type='bridge'``: with
``type='bridge'`` libvirt creates the tap (``vnetN``), names it from a global counter and
deletes it with the domain, so after a daemon crash nothing ties a ``vnetN`` to a container.
We create the tap ourselves, with a name derived from the container ID, and hand it to libvirt
as ``<interface type='ethernet'><target dev='hytXXXXXXXXXXX' managed='no'/>``: we own its
name and its lifetime, it can exist before the domain is defined (so the network is ready, and
its failure cheap, before any VM boots), it survives the daemon and the VM (live restore keeps
working), and reconciliation after a crash is a matter of listing ``hyt*`` devices and
deleting those whose container is gone.

Taps get a ``fe:``-prefixed MAC (the guest's MAC with the first byte replaced, as libvirt does)
and the bridge a fixed MAC of its own, so the bridge never adopts a port's address and its
MAC does not change as VMs come and go (which would stale the guests' ARP caches).
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import re
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from hyperd.errors import Conflict, HyperError, InvalidArgument

TAP_PREFIX = "hyt"
BRIDGE_PREFIX = "hyb"
TAP_OWNER_CHARS, TAP_NET_CHARS = 8, 4  # hyt + 8 + 4 = 15 characters, the kernel's limit
BRIDGE_ID_CHARS = 12
IFNAMSIZ = 15  # usable characters of an interface name
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
_NAME_OK = re.compile(r"^[A-Za-z0-9_.-]+$")


class NetworkError(HyperError):
    """A netlink, sysctl or iptables operation failed."""


def tap_name(owner: str, network_id: str) -> str:
    """The tap of a container on a network: ``hyt`` + 8 characters of the container's ID
    and 4 of the network's."""
    for what, value in (("network owner", owner), ("network ID", network_id)):
        if not value or not _NAME_OK.match(value):
            raise InvalidArgument(f"invalid {what} {value!r} (letters, digits, _ . - only)")
    return TAP_PREFIX + owner[:TAP_OWNER_CHARS] + network_id[:TAP_NET_CHARS]


def bridge_name(network_id: str) -> str:
    """The bridge of a user-defined network: ``hyb`` + the first 12 characters of its ID."""
    return BRIDGE_PREFIX + network_id[:BRIDGE_ID_CHARS]


def links(prefix: str) -> list[str]:
    """Names of every interface starting with ``prefix``."""
    with IPRoute() as ipr:
        names = (link.get_attr("IFLA_IFNAME") or "" for link in ipr.get_links())
        return sorted(n for n in names if n.startswith(prefix))


def delete_link(name: str) -> None:
    """Delete an interface by name (nothing happens if it is gone)."""
    with IPRoute() as ipr:
        Bridge._delete(ipr, name)


def create_spare_tap(name: str) -> None:
    """A tap on no bridge, for a VM booted before it has a network (the VM pool's)."""
    with IPRoute() as ipr:
        try:
            _add_tap(ipr, name)
        except (NetlinkError, OSError) as exc:  # OSError: the TUNSETIFF ioctl
            raise NetworkError(f"cannot create tap {name}: {exc}") from exc


def rename_link(old: str, new: str) -> None:
    """Rename an interface (taken down first: the kernel renames only a down link)."""
    with IPRoute() as ipr:
        index = Bridge._index(ipr, old)
        if index is None:
            raise NetworkError(f"interface {old} does not exist")
        try:
            ipr.link("set", index=index, state="down")
            ipr.link("set", index=index, ifname=new)
        except NetlinkError as exc:
            raise NetworkError(f"cannot rename {old} to {new}: {exc}") from exc


def _add_tap(ipr: IPRoute, name: str) -> int:
    """Create a persistent tap (no packet-info header, vnet header as QEMU opens it)."""
    ipr.link("add", ifname=name, kind="tuntap", mode="tap", ifr={"no_pi": 1, "vnet_hdr": 1})
    index = Bridge._index(ipr, name)
    if index is None:
        raise NetworkError(f"tap {name} vanished right after creation")
    return index


def enable_ip_forward(path: str = IP_FORWARD) -> None:
    """Let the host route the guests' traffic (net.ipv4.ip_forward = 1)."""
    try:
        if Path(path).read_text().strip() != "1":
            Path(path).write_text("1\n")
    except OSError as exc:
        raise NetworkError(f"cannot enable IPv4 forwarding ({path}): {exc}") from exc


def _bridge_mac(name: str) -> str:
    digest = hashlib.sha256(b"hyper-bridge:" + name.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def _tap_mac(mac: str) -> str:
    return "fe" + mac[2:]


class Bridge:
    """The bridge ``name`` with the gateway of ``subnet``, and the taps on it."""

    def __init__(self, name: str = "hyper0", subnet: str = "10.213.0.0/16", gateway: str = ""):
        if not name or len(name) > IFNAMSIZ or not _NAME_OK.match(name):
            raise InvalidArgument(f"invalid bridge name {name!r} (at most 15 of [A-Za-z0-9_.-])")
        if name.startswith(TAP_PREFIX):
            raise InvalidArgument(f"bridge name {name!r} must not start with {TAP_PREFIX!r}")
        self.name = name
        try:
            self.network = ipaddress.IPv4Network(subnet, strict=True)
        except ValueError as exc:
            raise InvalidArgument(f"invalid subnet {subnet!r}: {exc}") from None
        self.gateway = gateway or str(self.network.network_address + 1)
        self.prefix = self.network.prefixlen

    # -- bridge -------------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the bridge if missing, give it the gateway address, bring it up."""
        with IPRoute() as ipr:
            self._check_overlap(ipr)
            index = self._index(ipr, self.name)
            if index is None:
                try:
                    ipr.link("add", ifname=self.name, kind="bridge", address=_bridge_mac(self.name))
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST:
                        raise NetworkError(f"cannot create bridge {self.name}: {exc}") from exc
                index = self._index(ipr, self.name)
            elif self._kind(ipr, index) != "bridge":
                raise Conflict(f"interface {self.name} exists and is not a bridge")
            have = {
                (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in ipr.get_addr(index=index, family=2)
            }
            try:
                if (self.gateway, self.prefix) not in have:
                    ipr.addr("add", index=index, address=self.gateway, prefixlen=self.prefix)
                ipr.link("set", index=index, state="up")
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise NetworkError(f"cannot configure bridge {self.name}: {exc}") from exc

    def _check_overlap(self, ipr: IPRoute) -> None:
        """Refuse a subnet that another interface of the host already uses."""
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for addr in ipr.get_addr(family=2):
            ifname = names.get(addr["index"], "?")
            if ifname == self.name:
                continue
            other = ipaddress.IPv4Network(
                f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}", strict=False
            )
            if other.overlaps(self.network):
                raise Conflict(
                    f"subnet {self.network} overlaps {other} on interface {ifname}; "
                    "choose another subnet for the hyper bridge"
                )

    def exists(self) -> bool:
        """Whether the bridge exists."""
        with IPRoute() as ipr:
            return self._index(ipr, self.name) is not None

    def addresses(self) -> list[str]:
        """The bridge's IPv4 addresses as ``ip/prefix`` (empty if it does not exist)."""
        with IPRoute() as ipr:
            index = self._index(ipr, self.name)
            if index is None:
                return []
            return [
                f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                for a in ipr.get_addr(index=index, family=2)
            ]

    def is_up(self) -> bool:
        """Whether the bridge exists and is administratively up."""
        with IPRoute() as ipr:
            index = self._index(ipr, self.name)
            return index is not None and bool(ipr.get_links(index)[0]["flags"] & 1)

    def delete(self) -> None:
        """Remove the bridge (its taps are detached, not deleted)."""
        with IPRoute() as ipr:
            self._delete(ipr, self.name)

    # -- taps -----------------------------------------------------------------------------

    def create_tap(self, name: str, mac: str | None = None) -> str:
        """Create (or reuse) the tap ``name``, enslave it to the bridge, bring it up."""
        if not name.startswith(TAP_PREFIX) or len(name) > IFNAMSIZ:
            raise InvalidArgument(f"invalid tap name {name!r}")
        with IPRoute() as ipr:
            bridge = self._index(ipr, self.name)
            if bridge is None:
                raise NetworkError(f"bridge {self.name} does not exist (call setup first)")
            index = self._index(ipr, name)
            if index is not None and self._kind(ipr, index) != "tun":
                raise Conflict(f"interface {name} exists and is not a tap")
            try:
                if index is None:
                    index = _add_tap(ipr, name)
                extra = {"address": _tap_mac(mac)} if mac else {}
                ipr.link("set", index=index, master=bridge, state="up", **extra)
            except NetlinkError as exc:
                raise NetworkError(f"cannot set up tap {name} on {self.name}: {exc}") from exc
            except OSError as exc:  # the TUNSETIFF ioctl
                raise NetworkError(f"cannot create tap {name}: {exc}") from exc
        return name

    def delete_tap(self, name: str) -> None:
        """Delete a tap by name (nothing happens if it is gone)."""
        if not name.startswith(TAP_PREFIX):
            raise InvalidArgument(f"invalid tap name {name!r}")
        with IPRoute() as ipr:
            self._delete(ipr, name)

    def taps(self, all_bridges: bool = False) -> list[str]:
        """Names of ``hyt*`` taps on this bridge (or anywhere, with ``all_bridges``)."""
        with IPRoute() as ipr:
            bridge = self._index(ipr, self.name)
            out = []
            for link in ipr.get_links():
                name = link.get_attr("IFLA_IFNAME") or ""
                if not name.startswith(TAP_PREFIX):
                    continue
                if all_bridges or (bridge is not None and link.get_attr("IFLA_MASTER") == bridge):
                    out.append(name)
            return sorted(out)

    def tap_master(self, name: str) -> str | None:
        """The name of the device a tap is enslaved to, or None (also if it does not exist)."""
        with IPRoute() as ipr:
            index = self._index(ipr, name)
            if index is None:
                return None
            master = ipr.get_links(index)[0].get_attr("IFLA_MASTER")
            if master is None:
                return None
            return ipr.get_links(master)[0].get_attr("IFLA_IFNAME")

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _index(ipr: IPRoute, name: str) -> int | None:
        found = ipr.link_lookup(ifname=name)
        return found[0] if found else None

    @staticmethod
    def _kind(ipr: IPRoute, index: int) -> str | None:
        info = ipr.get_links(index)[0].get_attr("IFLA_LINKINFO")
        return info.get_attr("IFLA_INFO_KIND") if info else None

    @staticmethod
    def _delete(ipr: IPRoute, name: str) -> None:
        index = Bridge._index(ipr, name)
        if index is None:
            return
        try:
            ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise NetworkError(f"cannot delete {name}: {exc}") from exc
