"""IPv4 addresses and MACs of each network's endpoints, persisted in SQLite.

An endpoint is one owner (a container ID) on one network. Endpoints live in the table
``endpoints(network, owner, ip, mac, device)`` of the database file given to the
constructor, so a restarted daemon sees every address it handed out before. The keys mean
an owner holds at most one address per network, and an address or a MAC is never held twice
on one network. Allocation takes the lowest free host address of the network's range (its
``ip_range``, else its subnet): the network address, the gateway and the broadcast address
are never handed out. An owner may ask for a given address of the subnet instead.

``mac_for(key)`` gives a stable MAC in QEMU's locally administered ``52:54:00`` range, from
a hash of the endpoint; a clash on the same network takes the next hash.
"""

from __future__ import annotations

import hashlib
import ipaddress
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from hyperd.errors import Conflict, HyperError, InvalidArgument

SCHEMA = """
DROP TABLE IF EXISTS ip_allocations;
CREATE TABLE IF NOT EXISTS endpoints (
    network TEXT NOT NULL,
    owner   TEXT NOT NULL,
    ip      TEXT NOT NULL,
    mac     TEXT NOT NULL,
    device  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (network, owner),
    UNIQUE (network, ip),
    UNIQUE (network, mac)
);
CREATE INDEX IF NOT EXISTS endpoints_owner ON endpoints (owner);
"""
DEFAULT_NETWORK_KEY = "bridge"


class AddressPoolExhausted(HyperError):
    """Every address of the subnet is in use."""

    status = 503


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, shared by threads."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def parse_subnet(subnet: str) -> ipaddress.IPv4Network:
    """An IPv4 network with room for a gateway and at least one guest (prefix /8 to /30)."""
    try:
        net = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"invalid subnet {subnet!r}: {exc}") from None
    if not 8 <= net.prefixlen <= 30:
        raise InvalidArgument(f"subnet {subnet} must have a prefix between /8 and /30")
    return net


def mac_for(key: str) -> str:
    """A stable MAC for ``key``: ``52:54:00`` + 3 bytes of SHA-256 of it."""
    digest = hashlib.sha256(key.encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


class IPAM:
    """Addresses of one network's ``subnet`` handed to owners, one each.

    ``network`` keys the rows (a network ID); ``ip_range`` narrows automatic allocation to
    a part of the subnet; ``gateway`` defaults to the subnet's first host.
    """

    def __init__(
        self,
        db_path: str | Path,
        subnet: str = "10.213.0.0/16",
        network: str = DEFAULT_NETWORK_KEY,
        gateway: str = "",
        ip_range: str = "",
        reserved: Iterable[str] = (),
    ):
        self.network = parse_subnet(subnet)
        self.reserved = {int(ipaddress.IPv4Address(ip)) for ip in reserved}
        self.key = network
        self.gateway = ipaddress.IPv4Address(gateway) if gateway else self.network[1]
        pool = ipaddress.IPv4Network(ip_range) if ip_range else self.network
        self._first = max(int(pool.network_address), int(self.network.network_address) + 1)
        self._last = min(int(pool.broadcast_address), int(self.network.broadcast_address) - 1)
        self._db = connect(db_path)
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    @property
    def prefix(self) -> int:
        """The subnet's prefix length (16 for a /16)."""
        return self.network.prefixlen

    def allocate(self, owner: str, want: str = "", device: str = "", mac: str = "") -> str:
        """The owner's address: the one it holds, else ``want`` (if given), else the lowest
        free one. Conflict when ``want`` is taken or the owner holds another address.
        ``mac``: the MAC the endpoint must have (a NIC that exists already), else one is
        derived from the owner."""
        if not owner:
            raise InvalidArgument("an address owner must be a non-empty string")
        if want:
            self.check_address(want)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                ip = self._allocate(owner, want, device, mac)
                self._db.execute("COMMIT")
                return ip
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _allocate(self, owner: str, want: str, device: str, mac: str) -> str:
        row = self._db.execute(
            "SELECT ip, mac FROM endpoints WHERE network = ? AND owner = ?", (self.key, owner)
        ).fetchone()
        same_mac = not mac or (row and row[1] == mac)
        if row and same_mac and (row[0] == want or (not want and self._usable(row[0]))):
            return row[0]
        if row:  # another address asked for, or left over from another subnet
            self._db.execute(
                "DELETE FROM endpoints WHERE network = ? AND owner = ?", (self.key, owner)
            )
        if want and int(ipaddress.IPv4Address(want)) in self.reserved:
            raise Conflict(f"address {want} is reserved on this network (AuxiliaryAddresses)")
        if want:
            holder = self._db.execute(
                "SELECT owner FROM endpoints WHERE network = ? AND ip = ?", (self.key, want)
            ).fetchone()
            if holder:
                raise Conflict(f"address {want} is already in use on this network")
        if (
            mac
            and self._db.execute(
                "SELECT 1 FROM endpoints WHERE network = ? AND mac = ?", (self.key, mac)
            ).fetchone()
        ):
            raise Conflict(f"MAC address {mac} is already in use on this network")
        ip = want or self._lowest_free()
        self._db.execute(
            "INSERT INTO endpoints (network, owner, ip, mac, device) VALUES (?, ?, ?, ?, ?)",
            (self.key, owner, ip, mac or self._free_mac(owner), device),
        )
        return ip

    def check_address(self, ip: str) -> None:
        """400 unless ``ip`` is a host address of the subnet other than the gateway."""
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address {ip!r}") from None
        if addr not in self.network:
            raise InvalidArgument(f"address {ip} is not in the network's subnet {self.network}")
        if addr in (self.network.network_address, self.network.broadcast_address, self.gateway):
            raise InvalidArgument(f"address {ip} is reserved in {self.network}")

    def _usable(self, ip: str) -> bool:
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            return False
        return addr in self.network and addr != self.gateway

    def _lowest_free(self) -> str:
        rows = self._db.execute("SELECT ip FROM endpoints WHERE network = ?", (self.key,))
        used = {int(ipaddress.IPv4Address(ip)) for (ip,) in rows}
        used.add(int(self.gateway))
        used |= self.reserved
        candidate = self._first
        while candidate in used:
            candidate += 1
        if candidate > self._last:
            raise AddressPoolExhausted(
                f"no free address left in {self.network} ({len(used) - 1} in use)"
            )
        return str(ipaddress.IPv4Address(candidate))

    def _free_mac(self, owner: str) -> str:
        taken = {
            mac
            for (mac,) in self._db.execute(
                "SELECT mac FROM endpoints WHERE network = ?", (self.key,)
            )
        }
        key = f"{self.key}/{owner}"
        for n in range(1000):
            mac = mac_for(key if n == 0 else f"{key}/{n}")
            if mac not in taken:
                return mac
        raise AddressPoolExhausted("no free MAC address left on this network")

    def release(self, owner: str) -> None:
        """Give the owner's address back (nothing happens if it holds none)."""
        with self._lock:
            self._db.execute(
                "DELETE FROM endpoints WHERE network = ? AND owner = ?", (self.key, owner)
            )

    def lookup(self, owner: str) -> str | None:
        """The owner's address, or None."""
        row = self.row(owner)
        return row[0] if row else None

    def row(self, owner: str) -> tuple[str, str, str] | None:
        """The owner's (ip, mac, device), or None."""
        with self._lock:
            return self._db.execute(
                "SELECT ip, mac, device FROM endpoints WHERE network = ? AND owner = ?",
                (self.key, owner),
            ).fetchone()

    def mac(self, owner: str) -> str:
        """The MAC of the owner's endpoint ('' when it has none)."""
        row = self.row(owner)
        return row[1] if row else ""

    def owners(self) -> dict[str, str]:
        """Every owner holding an address, mapped to it."""
        with self._lock:
            rows = self._db.execute(
                "SELECT owner, ip FROM endpoints WHERE network = ?", (self.key,)
            ).fetchall()
        return dict(rows)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()
