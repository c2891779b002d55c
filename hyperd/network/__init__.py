"""Host networking for hyper's VMs: a bridge, a tap per VM, IPv4 addresses, NAT, ports.

    net = Network(bridge="hyper0", subnet="10.213.0.0/16", db_path=root / "network.db")
    net.setup()                              # bridge + gateway, ip_forward, iptables chains
    ep = net.attach(cid)                     # Endpoint(ip, prefix, gateway, mac, tap)
    net.publish(cid, parse_ports(["8080:80"]))  # proxy sockets bound, then DNAT rules
    ...                                      # boot the VM on ep.tap with ep.mac
    net.detach(cid)                          # ports, tap and address gone
    net.reconcile(live_cids)                 # at start-up: drop what dead containers left

Every method is synchronous (netlink, iptables, SQLite); call them through
``asyncio.to_thread`` from the daemon's loop. The userland port proxies run on an event loop
of their own, in a thread the Network starts on first use.

Default subnet: ``10.213.0.0/16``. It avoids Docker's ``172.17.0.0/16`` (and the 172.16/12
range Docker allocates more bridges from), podman's ``10.88.0.0/16``, libvirt's default
``192.168.122.0/24``, and the ``192.168.x`` and ``10.0.x``/``10.1.x`` networks that home and
office LANs and VPNs use most. ``setup()`` refuses (Conflict) a subnet that overlaps an address
on another interface, so a clash shows up as a clear error, and the subnet is configurable.

State that reconciliation needs is in SQLite (the ``db_path`` file): ``ip_allocations``
(ipam.py) and ``port_bindings`` (here). Taps are named after their owner (bridge.py), and every
firewall rule names the bridge (firewall.py), so after a crash everything an owner left behind
can be found and removed by name. One daemon per bridge and database.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hyperapi.portspec import PortBinding, parse_port_spec, parse_ports
from hyperd.errors import Conflict, HyperError, InvalidArgument
from hyperd.network.bridge import Bridge, NetworkError, enable_ip_forward, tap_name
from hyperd.network.firewall import Firewall, FirewallError
from hyperd.network.ipam import IPAM, connect, mac_for, parse_subnet
from hyperd.network.ports import PortProxy

__all__ = [
    "DEFAULT_BRIDGE",
    "DEFAULT_SUBNET",
    "Endpoint",
    "FirewallError",
    "Network",
    "NetworkError",
    "PortBinding",
    "mac_for",
    "parse_port_spec",
    "parse_ports",
    "tap_name",
]

log = logging.getLogger(__name__)

DEFAULT_BRIDGE = "hyper0"
DEFAULT_SUBNET = "10.213.0.0/16"
DEFAULT_DB = "/var/lib/hyper/network.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS port_bindings (
    owner          TEXT NOT NULL,
    proto          TEXT NOT NULL,
    host_ip        TEXT NOT NULL,
    host_port      INTEGER NOT NULL,
    container_port INTEGER NOT NULL,
    ip             TEXT NOT NULL,
    PRIMARY KEY (proto, host_ip, host_port)
);
CREATE INDEX IF NOT EXISTS port_bindings_owner ON port_bindings (owner);
"""


@dataclass(frozen=True)
class Endpoint:
    """A VM's place on the bridge: what its domain XML and guest interface need."""

    ip: str
    prefix: int
    gateway: str
    mac: str
    tap: str

    @property
    def netmask(self) -> str:
        """The dotted netmask (``255.255.0.0`` for a /16), as SETUPINTERFACE wants it."""
        return str(ipaddress.IPv4Network(f"0.0.0.0/{self.prefix}").netmask)

    @property
    def cidr(self) -> str:
        """``ip/prefix``."""
        return f"{self.ip}/{self.prefix}"


class _LoopThread:
    """The proxies' event loop, in a daemon thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="hyper-port-proxy", daemon=True
        )
        self.thread.start()

    def run(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


class Network:
    """The bridge, taps, addresses, NAT rules and port proxies of one daemon."""

    def __init__(
        self,
        bridge: str = DEFAULT_BRIDGE,
        subnet: str = DEFAULT_SUBNET,
        db_path: str | Path = DEFAULT_DB,
        iptables: str = "iptables",
        udp_idle_timeout: float = 90.0,
    ):
        net = parse_subnet(subnet)
        self.subnet = str(net)
        self.bridge = Bridge(bridge, self.subnet)
        self.firewall = Firewall(bridge, self.subnet, iptables)
        self.ipam = IPAM(db_path, self.subnet)
        self.udp_idle_timeout = udp_idle_timeout
        self._db = connect(db_path)
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()
        self._proxies: dict[str, list[PortProxy]] = {}
        self._loop: _LoopThread | None = None

    # -- set-up -------------------------------------------------------------------------

    def setup(self) -> None:
        """Bridge with the gateway address, IPv4 forwarding, firewall chains (idempotent)."""
        with self._lock:
            self.bridge.ensure()
            enable_ip_forward()
            self.firewall.setup()

    # -- endpoints ----------------------------------------------------------------------

    def attach(self, owner: str) -> Endpoint:
        """Give ``owner`` an address and a tap on the bridge (idempotent)."""
        name = tap_name(owner)  # validates the owner before anything is allocated
        with self._lock:
            had = self.ipam.lookup(owner)
            ip = self.ipam.allocate(owner)
            mac = mac_for(owner)
            try:
                self.bridge.create_tap(owner, mac)
            except BaseException:
                if had is None:
                    self.ipam.release(owner)
                raise
            return Endpoint(ip, self.bridge.prefix, self.bridge.gateway, mac, name)

    def endpoint(self, owner: str) -> Endpoint | None:
        """The owner's endpoint if it holds an address, else None."""
        ip = self.ipam.lookup(owner)
        if ip is None:
            return None
        return Endpoint(
            ip, self.bridge.prefix, self.bridge.gateway, mac_for(owner), tap_name(owner)
        )

    def detach(self, owner: str) -> None:
        """Remove the owner's ports, its tap and its address (each may already be gone)."""
        with self._lock:
            self.unpublish(owner)
            self.bridge.delete_tap(tap_name(owner))
            self.ipam.release(owner)

    # -- ports --------------------------------------------------------------------------

    def _loop_thread(self) -> _LoopThread:
        if self._loop is None:
            self._loop = _LoopThread()
        return self._loop

    def _rows(self, owner: str | None = None) -> list[tuple]:
        sql = "SELECT owner, proto, host_ip, host_port, container_port, ip FROM port_bindings"
        if owner is None:
            return self._db.execute(sql).fetchall()
        return self._db.execute(sql + " WHERE owner = ?", (owner,)).fetchall()

    def ports(self, owner: str) -> list[PortBinding]:
        """The owner's published ports."""
        with self._lock:
            return [PortBinding(p, h, hp, cp) for _, p, h, hp, cp, _ in self._rows(owner)]

    def publish(self, owner: str, bindings: Iterable[PortBinding]) -> list[PortBinding]:
        """Bind the host ports (Conflict if one is taken), then proxy and DNAT them.

        Returns the bindings with random host ports (0) replaced by the ones chosen.
        All or nothing: on any error, nothing of this call is left behind.
        """
        bindings = list(bindings)
        with self._lock:
            ip = self.ipam.lookup(owner)
            if ip is None:
                raise InvalidArgument(f"{owner} has no network endpoint (attach it first)")
            if not bindings:
                return []
            proxy = PortProxy(self.udp_idle_timeout)
            bound = proxy.reserve(bindings)
            added: list[PortBinding] = []
            try:
                self._insert(owner, ip, bound)
                for b in bound:
                    self.firewall.add_port(b.proto, b.host_ip, b.host_port, ip, b.container_port)
                    added.append(b)
                self._loop_thread().run(proxy.start(ip))
            except BaseException:
                for b in added:
                    with contextlib.suppress(HyperError):
                        self.firewall.remove_port(
                            b.proto, b.host_ip, b.host_port, ip, b.container_port
                        )
                self._delete_rows(owner, bound)
                self._close_proxy(proxy)
                raise
            self._proxies.setdefault(owner, []).append(proxy)
            return bound

    def _insert(self, owner: str, ip: str, bound: list[PortBinding]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for b in bound:
                self._db.execute(
                    "INSERT INTO port_bindings VALUES (?, ?, ?, ?, ?, ?)",
                    (owner, b.proto, b.host_ip, b.host_port, b.container_port, ip),
                )
            self._db.execute("COMMIT")
        except sqlite3.IntegrityError:
            self._db.execute("ROLLBACK")
            raise Conflict(f"a port of {', '.join(map(str, bound))} is already published") from None
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _delete_rows(self, owner: str, bound: list[PortBinding]) -> None:
        for b in bound:
            self._db.execute(
                "DELETE FROM port_bindings WHERE owner = ? AND proto = ? AND host_ip = ? "
                "AND host_port = ?",
                (owner, b.proto, b.host_ip, b.host_port),
            )

    def _close_proxy(self, proxy: PortProxy) -> None:
        self._loop_thread().run(proxy.close())

    def unpublish(self, owner: str) -> None:
        """Stop the owner's proxies and remove its DNAT rules and port records."""
        with self._lock:
            for proxy in self._proxies.pop(owner, []):
                self._close_proxy(proxy)
            for _, proto, host_ip, host_port, cport, ip in self._rows(owner):
                self.firewall.remove_port(proto, host_ip, host_port, ip, cport)
            self._db.execute("DELETE FROM port_bindings WHERE owner = ?", (owner,))

    # -- recovery -----------------------------------------------------------------------

    def reconcile(self, live_owners: Iterable[str]) -> dict[str, list[str]]:
        """Remove what owners outside ``live_owners`` left (taps, addresses, ports, rules),
        and bring back the DNAT rules and proxies of live owners (after a daemon restart).

        Returns what was done, for the log: ``{"owners", "taps", "rules", "restored"}``.
        """
        live = set(live_owners)
        done: dict[str, list[str]] = {"owners": [], "taps": [], "rules": [], "restored": []}
        with self._lock:
            known = set(self.ipam.owners()) | {row[0] for row in self._rows()}
            for owner in sorted(known - live):
                self.detach(owner)
                done["owners"].append(owner)
            live_taps = {tap_name(o) for o in live}
            for tap in self.bridge.taps():
                if tap not in live_taps:
                    self.bridge.delete_tap(tap)
                    done["taps"].append(tap)
            expected = {
                (proto, host_ip, host_port, ip, cport)
                for _, proto, host_ip, host_port, cport, ip in self._rows()
            }
            with contextlib.suppress(FirewallError):
                for rule in self.firewall.ports():
                    if rule not in expected:
                        self.firewall.remove_port(*rule)
                        proto, host_ip, host_port, ip, port = rule
                        done["rules"].append(f"{host_ip}:{host_port}/{proto}->{ip}:{port}")
            for owner in sorted(live):
                if owner in self._proxies:
                    continue
                rows = self._rows(owner)
                if rows:
                    self._restore(owner, rows)
                    done["restored"].append(owner)
        return done

    def _restore(self, owner: str, rows: list[tuple]) -> None:
        """Re-create the DNAT rules and proxies of a live owner's recorded ports."""
        proxy = PortProxy(self.udp_idle_timeout)
        ip = rows[0][5]
        for _, proto, host_ip, host_port, cport, row_ip in rows:
            ip = row_ip
            binding = PortBinding(proto, host_ip, host_port, cport)
            self.firewall.add_port(proto, host_ip, host_port, row_ip, cport)
            try:
                proxy.reserve([binding])
            except HyperError as exc:
                log.warning("cannot re-open proxy for %s of %s: %s", binding, owner, exc.message)
        if proxy.bindings:
            self._loop_thread().run(proxy.start(ip))
            self._proxies.setdefault(owner, []).append(proxy)

    # -- shutdown -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the proxies and the proxy thread; keep taps, rules and records (live restore)."""
        with self._lock:
            for owner in list(self._proxies):
                for proxy in self._proxies.pop(owner):
                    self._close_proxy(proxy)
            if self._loop is not None:
                self._loop.stop()
                self._loop = None

    def teardown(self) -> None:
        """Remove everything: ports, taps, addresses, firewall rules and chains, the bridge.

        ``ip_forward`` is left as it is (something else may rely on it).
        """
        with self._lock:
            owners = set(self.ipam.owners()) | {row[0] for row in self._rows()}
            for owner in owners:
                self.detach(owner)
            self.close()
            for tap in self.bridge.taps():
                self.bridge.delete_tap(tap)
            self.firewall.teardown()
            self.bridge.delete()
