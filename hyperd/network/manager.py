"""The daemon's networks: records, bridges, firewall rules, endpoints and published ports."""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from hyperapi.portspec import PortBinding
from hyperd.errors import Conflict, HyperError, InvalidArgument

from . import pool as pools
from .bridge import (
    BRIDGE_PREFIX,
    TAP_PREFIX,
    Bridge,
    bridge_name,
    create_spare_tap,
    delete_link,
    enable_ip_forward,
    links,
    rename_link,
    tap_name,
)
from .firewall import Firewall, FirewallError
from .ipam import IPAM, connect, mac_for, parse_subnet
from .published import Publisher
from .records import (
    DEFAULT,
    NONE,
    NetworkRecord,
    NetworkSpec,
    NetworkTable,
    check_name,
    now_rfc3339,
    predefined_id,
)

log = logging.getLogger(__name__)

DEFAULT_BRIDGE = "hyper0"
DEFAULT_SUBNET = "10.213.0.0/16"
DEFAULT_DB = "/var/lib/hyper/network.db"
# Taps of pool VMs (booted before they have a network): ``hytpool`` + 8 hex digits, a name
# no container's tap has (theirs take hex digits of its ID where ``pool`` stands).
SPARE_PREFIX = f"{TAP_PREFIX}pool"


class Forbidden(HyperError):
    """The operation is not allowed on this object (a predefined network)."""

    kind = "Forbidden"
    status = 403


@dataclass(frozen=True)
class Endpoint:
    """A VM's place on one network: what its domain XML and guest interface need."""

    ip: str
    prefix: int
    gateway: str
    mac: str
    tap: str
    network: str = ""  # network ID
    name: str = ""  # network name
    bridge: str = ""
    device: str = ""  # the NIC's name in the guest (eth0, eth1...)
    internal: bool = False

    @property
    def netmask(self) -> str:
        """The dotted netmask (``255.255.0.0`` for a /16), as SETUPINTERFACE wants it."""
        return str(ipaddress.IPv4Network(f"0.0.0.0/{self.prefix}").netmask)

    @property
    def cidr(self) -> str:
        """``ip/prefix``."""
        return f"{self.ip}/{self.prefix}"


@dataclass(frozen=True)
class SpareNic:
    """A NIC a VM booted with before it had a network: its tap (on no bridge) and MAC."""

    tap: str
    mac: str


def _device_key(ep: Endpoint) -> tuple[int, str]:
    digits = ep.device.removeprefix("eth")
    return (int(digits), "") if digits.isdigit() else (1 << 30, ep.device)


class Network:
    """Every network of one daemon: the default bridge, user-defined bridges, ``none``."""

    def __init__(
        self,
        bridge: str = DEFAULT_BRIDGE,
        subnet: str = DEFAULT_SUBNET,
        db_path: str | Path = DEFAULT_DB,
        iptables: str = "iptables",
        udp_idle_timeout: float = 90.0,
        pools_: tuple[pools.AddressPool, ...] = pools.DEFAULT_POOLS,
    ):
        net = parse_subnet(subnet)
        self.subnet = str(net)
        self.db_path = db_path
        self.iptables = iptables
        self.pools = pools_
        self.bridge = Bridge(bridge, self.subnet)
        self._lock = threading.RLock()
        self._db = connect(db_path)
        self.records = NetworkTable(db_path)
        self.default = self._predefined(bridge)
        self.firewall = Firewall(bridge, self.subnet, iptables)
        self._ipams: dict[str, IPAM] = {}
        self.ipam = self._ipam(self.default)
        self.publisher = Publisher(self._db, self._firewall_for, udp_idle_timeout)

    def _predefined(self, bridge: str) -> NetworkRecord:
        """Record ``bridge`` (this daemon's default bridge, as configured) and ``none``."""
        old = self.records.find(DEFAULT)
        rec = NetworkRecord(
            id=predefined_id(DEFAULT, bridge),
            name=DEFAULT,
            driver="bridge",
            created=old.created if old else now_rfc3339(),
            bridge=bridge,
            subnet=self.subnet,
            gateway=self.bridge.gateway,
            options={"com.docker.network.bridge.name": bridge},
            builtin=True,
        )
        if old is not None and old.id != rec.id:
            self.records.delete(old)  # the configured bridge changed
        self.records.put(rec)
        if self.records.find(NONE) is None:
            none = NetworkRecord(predefined_id(NONE), NONE, "null", now_rfc3339(), builtin=True)
            self.records.put(none)
        return rec

    # -- per-network helpers -------------------------------------------------------------

    def _ipam(self, rec: NetworkRecord) -> IPAM:
        ipam = self._ipams.get(rec.id)
        if ipam is None:
            ipam = IPAM(
                self.db_path,
                rec.subnet,
                rec.id,
                rec.gateway,
                rec.ip_range,
                reserved=rec.aux_addresses.values(),
            )
            self._ipams[rec.id] = ipam
        return ipam

    def _bridge(self, rec: NetworkRecord) -> Bridge:
        return Bridge(rec.bridge, rec.subnet, rec.gateway)

    def _firewall(self, rec: NetworkRecord) -> Firewall:
        return Firewall(rec.bridge, rec.subnet, self.iptables, rec.internal)

    def _firewall_for(self, bridge: str) -> Firewall:
        rec = next((r for r in self.records if r.bridge == bridge), None)
        return self._firewall(rec) if rec else Firewall(bridge, "0.0.0.0/0", self.iptables)

    def _bridged(self) -> list[NetworkRecord]:
        return [r for r in self.records if r.has_bridge]

    def _bring_up(self, rec: NetworkRecord) -> None:
        self._bridge(rec).ensure()
        self._firewall(rec).setup()

    # -- set-up -------------------------------------------------------------------------

    def setup(self) -> None:
        """Every network's bridge with its gateway, IPv4 forwarding, firewall rules
        (idempotent)."""
        with self._lock:
            self._bring_up(self.default)
            enable_ip_forward()
            for rec in self._bridged():
                if rec.id == self.default.id:
                    continue
                try:
                    self._bring_up(rec)
                except HyperError as exc:  # one broken network must not keep hyperd down
                    log.error("cannot bring up network %s (%s): %s", rec.name, rec.bridge, exc)

    # -- networks -----------------------------------------------------------------------

    def get(self, ref: str) -> NetworkRecord:
        """A network by ID, name or ID prefix (404 when none)."""
        return self.records.get(ref)

    def list(self) -> list[NetworkRecord]:
        """Every network, predefined ones first."""
        return list(self.records)

    def create(self, spec: NetworkSpec) -> NetworkRecord:
        """A new bridge network, its bridge up and its rules in place."""
        check_name(spec.name)
        if (spec.driver or "bridge") != "bridge":
            raise InvalidArgument(
                f"network driver {spec.driver!r} is not supported: hyper has the bridge driver only"
            )
        with self._lock:
            if self.records.find(spec.name) is not None:
                raise Conflict(f"network with name {spec.name} already exists")
            subnet, gateway, ip_range = self._addresses(spec)
            pools.check_aux(spec.aux_addresses, subnet, gateway)
            nid = NetworkTable.new_id()
            rec = NetworkRecord(
                id=nid,
                name=spec.name,
                driver="bridge",
                created=now_rfc3339(),
                bridge=bridge_name(nid),
                subnet=subnet,
                gateway=gateway,
                ip_range=ip_range,
                internal=spec.internal,
                attachable=spec.attachable,
                labels=dict(spec.labels),
                options=dict(spec.options),
                ipam_options=dict(spec.ipam_options),
                aux_addresses=dict(spec.aux_addresses),
            )
            self.records.put(rec)  # first: a crash from here on leaves a record to clean up
            try:
                self._bring_up(rec)
            except BaseException:
                self._take_down(rec)
                raise
            log.info("created network %s (%s) on %s, %s", rec.name, nid[:12], rec.bridge, subnet)
            return rec

    def _addresses(self, spec: NetworkSpec) -> tuple[str, str, str]:
        others = list(self.records)
        host = pools.host_networks({r.bridge for r in others if r.bridge})
        if spec.subnet:
            subnet, gateway, ip_range = pools.check_spec(spec)
            pools.check_free(subnet, others, host)
            return subnet, gateway, ip_range
        if spec.gateway or spec.ip_range:
            raise InvalidArgument("a gateway or an ip-range needs a subnet (IPAM.Config.Subnet)")
        subnet = pools.pick(self.pools, others, host)
        return subnet, str(ipaddress.IPv4Network(subnet)[1]), ""

    def remove(self, ref: str) -> NetworkRecord:
        """Delete a user-defined network: 403 for predefined ones, 409 while in use."""
        with self._lock:
            rec = self.records.get(ref)
            if rec.builtin:
                raise Forbidden(f"{rec.name} is a pre-defined network and cannot be removed")
            if self._ipam(rec).owners():
                raise Conflict(
                    f"error while removing network: network {rec.name} id {rec.id} "
                    "has active endpoints"
                )
            self._take_down(rec)
            log.info("removed network %s (%s)", rec.name, rec.id[:12])
            return rec

    def owners(self, network: str) -> set[str]:
        """Who holds an endpoint on a network (its running containers)."""
        rec = self.records.get(network)
        return set(self._ipam(rec).owners()) if rec.has_bridge else set()

    def _take_down(self, rec: NetworkRecord) -> None:
        bridge = self._bridge(rec)
        for tap in bridge.taps():
            bridge.delete_tap(tap)
        self._firewall(rec).purge(rec.bridge)
        bridge.delete()
        self._ipams.pop(rec.id, None)
        self.records.delete(rec)

    # -- endpoints ----------------------------------------------------------------------

    def attach(
        self,
        owner: str,
        network: str = DEFAULT,
        ip: str = "",
        device: str = "",
        spare: SpareNic | None = None,
        mac: str = "",
    ):
        """Give ``owner`` an address and a tap on ``network`` (idempotent); ``ip`` asks for
        a given address (user-defined networks only); ``spare``: the NIC (tap and MAC) the
        owner's VM already has, which then becomes its endpoint on ``network``; ``mac``: the
        MAC asked for (else one derived from the owner)."""
        rec = self.records.get(network)
        if not rec.has_bridge:
            raise InvalidArgument(f"network {rec.name} has no bridge to attach to")
        if ip:
            self.check_address(network, ip)
        tap = tap_name(owner, rec.id)  # validates the owner before anything is allocated
        with self._lock:
            ipam = self._ipam(rec)
            had = ipam.row(owner)
            ipam.allocate(owner, ip, device, spare.mac if spare else mac)
            try:
                if spare is not None:
                    rename_link(spare.tap, tap)
                self._bridge(rec).create_tap(tap, ipam.mac(owner))
            except BaseException:
                if had is None:
                    ipam.release(owner)
                raise
            return self._endpoint(rec, owner)

    def spare_nic(self, token: str) -> SpareNic:
        """A tap on no bridge, and a MAC, for a VM booted before it joins a network."""
        nic = SpareNic(SPARE_PREFIX + token[:8], mac_for(f"spare/{token}"))
        create_spare_tap(nic.tap)
        return nic

    @staticmethod
    def drop_spare(nic: SpareNic) -> None:
        """Delete a spare tap (it may be gone, or have become an endpoint's)."""
        delete_link(nic.tap)

    @staticmethod
    def drop_stray_spares(live_tokens: set[str]) -> list[str]:
        """Delete the spare taps of VMs that are gone (their tokens not in ``live_tokens``,
        the first 8 characters of each); returns their names."""
        stray = [t for t in links(SPARE_PREFIX) if t[len(SPARE_PREFIX) :] not in live_tokens]
        for name in stray:
            delete_link(name)
        return stray

    def check_address(self, network: str, ip: str) -> None:
        """400 unless ``ip`` may be asked for on ``network`` (a host address of the subnet
        of a user-defined network)."""
        rec = self.records.get(network)
        if rec.builtin:
            raise InvalidArgument(
                "user specified IP address is supported on user defined networks only"
            )
        self._ipam(rec).check_address(ip)

    def _endpoint(self, rec: NetworkRecord, owner: str) -> Endpoint | None:
        row = self._ipam(rec).row(owner)
        if row is None:
            return None
        ip, mac, device = row
        prefix = ipaddress.IPv4Network(rec.subnet).prefixlen
        tap = tap_name(owner, rec.id)
        return Endpoint(
            ip, prefix, rec.gateway, mac, tap, rec.id, rec.name, rec.bridge, device, rec.internal
        )

    def endpoint(self, owner: str, network: str = DEFAULT) -> Endpoint | None:
        """The owner's endpoint on a network if it holds an address there, else None."""
        rec = self.records.find(network)
        return self._endpoint(rec, owner) if rec and rec.has_bridge else None

    def endpoints(self, owner: str) -> list[Endpoint]:
        """Every endpoint of the owner, in the order of their guest devices (eth0 first)."""
        found = [self._endpoint(rec, owner) for rec in self._bridged()]
        return sorted((ep for ep in found if ep is not None), key=_device_key)

    def detach(self, owner: str, network: str | None = None) -> None:
        """Remove the owner's endpoint on ``network`` (every one when None): its tap, its
        address, and its published ports when they went to that network. Each may already
        be gone."""
        with self._lock:
            recs = self._bridged() if network is None else [self.records.get(network)]
            ported = {row[6] for row in self.publisher.rows(owner)}
            if network is None or any(r.bridge in ported for r in recs):
                self.publisher.unpublish(owner)
            for rec in recs:
                if rec.has_bridge:
                    self._bridge(rec).delete_tap(tap_name(owner, rec.id))
                    self._ipam(rec).release(owner)

    # -- ports --------------------------------------------------------------------------

    def ports(self, owner: str) -> list[PortBinding]:
        """The owner's published ports."""
        return self.publisher.ports(owner)

    def publish(self, owner: str, bindings) -> list[PortBinding]:
        """Publish ports to the owner's address on its first network (see Publisher)."""
        bindings = list(bindings)
        eps = self.endpoints(owner)
        if not eps:
            raise InvalidArgument(f"{owner} has no network endpoint (attach it first)")
        return self.publisher.publish(owner, bindings, eps[0].ip, eps[0].bridge)

    def unpublish(self, owner: str) -> None:
        """Stop the owner's proxies and remove its DNAT rules and port records."""
        self.publisher.unpublish(owner)

    # -- recovery -----------------------------------------------------------------------

    def reconcile(self, live_owners) -> dict[str, list[str]]:
        """Remove what owners outside ``live_owners`` left (taps, addresses, ports, rules),
        bridges and rules of networks that are gone, and bring back the DNAT rules and
        proxies of live owners (after a daemon restart).

        Returns what was done, for the log: ``{"owners", "taps", "rules", "restored",
        "bridges"}``.
        """
        live = set(live_owners)
        done: dict[str, list[str]] = {k: [] for k in ("owners", "taps", "rules", "restored")}
        done["bridges"] = []
        with self._lock:
            known = self.publisher.owners()
            for rec in self._bridged():
                known |= set(self._ipam(rec).owners())
            for owner in sorted(known - live):
                self.detach(owner)
                done["owners"].append(owner)
            ids = [r.id for r in self._bridged()]
            marks = ",".join("?" * len(ids))
            self._db.execute(f"DELETE FROM endpoints WHERE network NOT IN ({marks})", ids)
            self._drop_stray_taps(live, done)
            self._drop_stray_bridges(done)
            self.publisher.reconcile(live, [r.bridge for r in self._bridged()], done)
        return done

    def _drop_stray_taps(self, live: set[str], done: dict) -> None:
        """Taps on our bridges that no live endpoint accounts for."""
        expected = {ep.tap for owner in live for ep in self.endpoints(owner)}
        for rec in self._bridged():
            bridge = self._bridge(rec)
            for tap in bridge.taps():
                if tap not in expected:
                    bridge.delete_tap(tap)
                    done["taps"].append(tap)

    def _drop_stray_bridges(self, done: dict) -> None:
        """``hyb*`` bridges and their rules whose network is gone (one networking hyperd
        per network namespace owns the ``hyb`` names)."""
        ours = {r.bridge for r in self._bridged()}
        try:
            ruled = {b for b in self.firewall.bridges() if b.startswith(BRIDGE_PREFIX)}
        except FirewallError:
            ruled = set()
        for name in sorted((set(links(BRIDGE_PREFIX)) | ruled) - ours):
            for tap in Bridge(name).taps():
                Bridge(name).delete_tap(tap)
            self.firewall.purge(name)
            delete_link(name)
            done["bridges"].append(name)

    # -- shutdown -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the proxies and the proxy thread; keep taps, rules and records (live restore)."""
        self.publisher.close()

    def teardown(self) -> None:
        """Remove every network's ports, taps, addresses, firewall rules and bridge (the
        records of user-defined networks stay: the next setup brings them back).

        ``ip_forward`` is left as it is (something else may rely on it).
        """
        with self._lock:
            self.reconcile(set())
            self.close()
            for rec in self._bridged():
                bridge = self._bridge(rec)
                for tap in bridge.taps():
                    if tap.startswith(TAP_PREFIX):
                        bridge.delete_tap(tap)
                self._firewall(rec).purge(rec.bridge)
                bridge.delete()
