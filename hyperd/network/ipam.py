"""IPv4 address management for the bridge subnet, persisted in SQLite.

Addresses live in the table ``ip_allocations(ip TEXT PRIMARY KEY, owner TEXT NOT NULL UNIQUE)``
of the database file given to the constructor, so a restarted daemon (a new ``IPAM`` on the
same file) sees every address it handed out before. The primary key means an address can never
be held twice, the unique owner that an owner never holds two. Allocation takes the lowest free
host address from ``.2`` upward: the network address, the gateway (the first host, on the
bridge) and the broadcast address are never handed out.

``mac_for(owner)`` gives every owner a stable MAC in QEMU's locally administered
``52:54:00`` range, derived from a hash of the owner.
"""

from __future__ import annotations

import hashlib
import ipaddress
import sqlite3
import threading
from pathlib import Path

from hyperd.errors import HyperError, InvalidArgument

SCHEMA = """
CREATE TABLE IF NOT EXISTS ip_allocations (
    ip    TEXT PRIMARY KEY,
    owner TEXT NOT NULL UNIQUE
);
"""


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


def mac_for(owner: str) -> str:
    """A stable MAC for ``owner``: ``52:54:00`` + 3 bytes of SHA-256 of the owner."""
    digest = hashlib.sha256(owner.encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


class IPAM:
    """Addresses of ``subnet`` handed to owners (container IDs), one each."""

    def __init__(self, db_path: str | Path, subnet: str = "10.213.0.0/16"):
        self.network = parse_subnet(subnet)
        self.gateway = self.network.network_address + 1
        self._first = int(self.network.network_address) + 2
        self._last = int(self.network.broadcast_address) - 1
        self._db = connect(db_path)
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    @property
    def prefix(self) -> int:
        """The subnet's prefix length (16 for a /16)."""
        return self.network.prefixlen

    def allocate(self, owner: str) -> str:
        """The owner's address: the one it already holds, else the lowest free one."""
        if not owner:
            raise InvalidArgument("an address owner must be a non-empty string")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT ip FROM ip_allocations WHERE owner = ?", (owner,)
                ).fetchone()
                if row and self._usable(row[0]):
                    self._db.execute("COMMIT")
                    return row[0]
                if row:  # left over from another subnet: no use on this bridge
                    self._db.execute("DELETE FROM ip_allocations WHERE owner = ?", (owner,))
                ip = self._lowest_free()
                self._db.execute(
                    "INSERT INTO ip_allocations (ip, owner) VALUES (?, ?)", (ip, owner)
                )
                self._db.execute("COMMIT")
                return ip
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _usable(self, ip: str) -> bool:
        try:
            value = int(ipaddress.IPv4Address(ip))
        except ValueError:
            return False
        return self._first <= value <= self._last

    def _lowest_free(self) -> str:
        rows = self._db.execute("SELECT ip FROM ip_allocations").fetchall()
        used = sorted(int(ipaddress.IPv4Address(ip)) for (ip,) in rows if self._usable(ip))
        candidate = self._first
        for value in used:
            if value > candidate:
                break
            if value == candidate:
                candidate += 1
        if candidate > self._last:
            raise AddressPoolExhausted(
                f"no free address left in {self.network} ({len(used)} in use)"
            )
        return str(ipaddress.IPv4Address(candidate))

    def release(self, owner: str) -> None:
        """Give the owner's address back (nothing happens if it holds none)."""
        with self._lock:
            self._db.execute("DELETE FROM ip_allocations WHERE owner = ?", (owner,))

    def lookup(self, owner: str) -> str | None:
        """The owner's address, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT ip FROM ip_allocations WHERE owner = ?", (owner,)
            ).fetchone()
        return row[0] if row else None

    def owners(self) -> dict[str, str]:
        """Every owner holding an address, mapped to it."""
        with self._lock:
            rows = self._db.execute("SELECT owner, ip FROM ip_allocations").fetchall()
        return dict(rows)

    def mac_for(self, owner: str) -> str:
        """The owner's stable MAC (see the module function)."""
        return mac_for(owner)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()
