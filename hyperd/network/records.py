"""Network records: what each network is (Docker's network object), kept in SQLite.

Two networks are predefined, as in Docker: ``bridge`` (the daemon's default bridge,
``hyper0``) and ``none`` (loopback only). ``host`` cannot exist: a container's network
stack is its VM's own. User-defined networks use the ``bridge`` driver only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hyperd.errors import Conflict, InvalidArgument, NotFound

from .ipam import connect

DEFAULT = "bridge"
NONE = "none"
HOST = "host"
PREDEFINED = (DEFAULT, NONE)
# Docker takes nearly any name ("test 01" too); the bridge is named from the ID, so only
# what cannot travel in a URL path or a log line is refused.
NAME_RE = re.compile(r"^[^\x00-\x1f\x7f/]{1,255}$")
HOST_REFUSED = "the host network is not possible with hyper: each container has a VM of its own"

SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);
"""


@dataclass
class NetworkSpec:
    """What ``POST /networks/create`` asks for (subnet '' = pick one from the pools)."""

    name: str
    driver: str = "bridge"
    internal: bool = False
    attachable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    ipam_options: dict[str, str] = field(default_factory=dict)
    aux_addresses: dict[str, str] = field(default_factory=dict)  # name -> IP, never handed out


@dataclass
class NetworkRecord:
    """One network."""

    id: str
    name: str
    driver: str  # bridge | null
    created: str
    bridge: str = ""  # the host bridge ('' for none)
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    internal: bool = False
    attachable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    ipam_options: dict[str, str] = field(default_factory=dict)
    aux_addresses: dict[str, str] = field(default_factory=dict)
    builtin: bool = False

    @property
    def has_bridge(self) -> bool:
        """False for ``none``: nothing to attach to."""
        return bool(self.bridge)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NetworkRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def predefined_id(name: str, bridge: str = "") -> str:
    """A stable ID for a predefined network (the same across daemon restarts)."""
    return hashlib.sha256(f"hyper-network:{name}:{bridge}".encode()).hexdigest()


def endpoint_id(owner: str, network_id: str) -> str:
    """The EndpointID Docker's API shows for a container on a network."""
    return hashlib.sha256(f"hyper-endpoint:{owner}:{network_id}".encode()).hexdigest()


def check_name(name: str) -> str:
    """A network name as Docker allows it."""
    if not name:
        raise InvalidArgument("network name is required (Name)")
    if name == HOST:
        raise InvalidArgument(f"cannot create a network named host: {HOST_REFUSED}")
    if not NAME_RE.match(name):
        raise InvalidArgument(
            f"invalid network name {name!r}: at most 255 characters, no '/' or control characters"
        )
    return name


class NetworkTable:
    """Network records in memory, written through to SQLite (``networks`` table)."""

    def __init__(self, db_path: str | Path):
        self._db = connect(db_path)
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()
        self._by_id: dict[str, NetworkRecord] = {}
        for (data,) in self._db.execute("SELECT data FROM networks"):
            rec = NetworkRecord.from_dict(json.loads(data))
            self._by_id[rec.id] = rec

    def __iter__(self):
        with self._lock:
            return iter(sorted(self._by_id.values(), key=lambda r: (not r.builtin, r.created)))

    def put(self, rec: NetworkRecord) -> None:
        """Insert or replace a record (Conflict when another network has its name)."""
        with self._lock:
            other = self.find(rec.name)
            if other is not None and other.id != rec.id:
                raise Conflict(f"network with name {rec.name} already exists")
            self._db.execute(
                "INSERT INTO networks (id, name, data) VALUES (?, ?, ?) ON CONFLICT(id) "
                "DO UPDATE SET name = excluded.name, data = excluded.data",
                (rec.id, rec.name, json.dumps(rec.to_dict())),
            )
            self._by_id[rec.id] = rec

    def delete(self, rec: NetworkRecord) -> None:
        with self._lock:
            self._db.execute("DELETE FROM networks WHERE id = ?", (rec.id,))
            self._by_id.pop(rec.id, None)

    def find(self, ref: str) -> NetworkRecord | None:
        """A network by full ID, name, or unique ID prefix; None if there is none."""
        with self._lock:
            if ref in self._by_id:
                return self._by_id[ref]
            for rec in self._by_id.values():
                if rec.name == ref:
                    return rec
            matches = [r for r in self._by_id.values() if ref and r.id.startswith(ref)]
        if len(matches) > 1:
            raise InvalidArgument(f"network {ref} is ambiguous ({len(matches)} matches)")
        return matches[0] if matches else None

    def get(self, ref: str) -> NetworkRecord:
        """Like find, a 404 when there is no such network (a 400 for ``host``)."""
        rec = self.find(ref)
        if rec is None:
            if ref == HOST:
                raise InvalidArgument(HOST_REFUSED)
            raise NotFound(f"network {ref} not found")
        return rec

    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(32)
