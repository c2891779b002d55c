"""Published ports of every owner: SQLite records, DNAT rules and the userland proxies.

A port goes to the owner's address on one network (its first): the DNAT rule names that
network's bridge, and the record keeps the bridge so the rule can be found again after a
crash. The proxies run on an event loop of their own, in a thread started on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable

from hyperapi.portspec import PortBinding
from hyperd.errors import Conflict, HyperError

from .firewall import Firewall, FirewallError
from .ports import PortProxy

log = logging.getLogger(__name__)

SCHEMA = """
DROP TABLE IF EXISTS port_bindings;
CREATE TABLE IF NOT EXISTS published_ports (
    owner          TEXT NOT NULL,
    proto          TEXT NOT NULL,
    host_ip        TEXT NOT NULL,
    host_port      INTEGER NOT NULL,
    container_port INTEGER NOT NULL,
    ip             TEXT NOT NULL,
    bridge         TEXT NOT NULL,
    PRIMARY KEY (proto, host_ip, host_port)
);
CREATE INDEX IF NOT EXISTS published_ports_owner ON published_ports (owner);
"""
COLUMNS = "owner, proto, host_ip, host_port, container_port, ip, bridge"


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


class Publisher:
    """Every published port of one daemon."""

    def __init__(
        self,
        db: sqlite3.Connection,
        firewall_for: Callable[[str], Firewall],
        udp_idle_timeout: float = 90.0,
    ):
        self._db = db
        self._db.executescript(SCHEMA)
        self._firewall_for = firewall_for
        self.udp_idle_timeout = udp_idle_timeout
        self._lock = threading.RLock()
        self._proxies: dict[str, list[PortProxy]] = {}
        self._loop: _LoopThread | None = None

    def _loop_thread(self) -> _LoopThread:
        if self._loop is None:
            self._loop = _LoopThread()
        return self._loop

    def rows(self, owner: str | None = None) -> list[tuple]:
        """Records as (owner, proto, host_ip, host_port, container_port, ip, bridge)."""
        sql = f"SELECT {COLUMNS} FROM published_ports"
        if owner is None:
            return self._db.execute(sql).fetchall()
        return self._db.execute(sql + " WHERE owner = ?", (owner,)).fetchall()

    def ports(self, owner: str) -> list[PortBinding]:
        """The owner's published ports."""
        with self._lock:
            return [PortBinding(r[1], r[2], r[3], r[4]) for r in self.rows(owner)]

    def publish(
        self, owner: str, bindings: Iterable[PortBinding], ip: str, bridge: str
    ) -> list[PortBinding]:
        """Bind the host ports (Conflict if one is taken), then proxy and DNAT them to ip.

        Returns the bindings with random host ports (0) replaced by the ones chosen.
        All or nothing: on any error, nothing of this call is left behind.
        """
        bindings = list(bindings)
        if not bindings:
            return []
        fw = self._firewall_for(bridge)
        with self._lock:
            proxy = PortProxy(self.udp_idle_timeout)
            bound = proxy.reserve(bindings)
            added: list[PortBinding] = []
            try:
                self._insert(owner, ip, bridge, bound)
                for b in bound:
                    fw.add_port(b.proto, b.host_ip, b.host_port, ip, b.container_port)
                    added.append(b)
                self._loop_thread().run(proxy.start(ip))
            except BaseException:
                for b in added:
                    with contextlib.suppress(HyperError):
                        fw.remove_port(b.proto, b.host_ip, b.host_port, ip, b.container_port)
                self._delete_rows(owner, bound)
                self._close_proxy(proxy)
                raise
            self._proxies.setdefault(owner, []).append(proxy)
            return bound

    def _insert(self, owner: str, ip: str, bridge: str, bound: list[PortBinding]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for b in bound:
                self._db.execute(
                    "INSERT INTO published_ports VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (owner, b.proto, b.host_ip, b.host_port, b.container_port, ip, bridge),
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
                "DELETE FROM published_ports WHERE owner = ? AND proto = ? AND host_ip = ? "
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
            for _, proto, host_ip, host_port, cport, ip, bridge in self.rows(owner):
                self._firewall_for(bridge).remove_port(proto, host_ip, host_port, ip, cport)
            self._db.execute("DELETE FROM published_ports WHERE owner = ?", (owner,))

    def owners(self) -> set[str]:
        """Every owner with a published port."""
        return {row[0] for row in self.rows()}

    def reconcile(self, live: set[str], bridges: Iterable[str], done: dict) -> None:
        """Drop DNAT rules nothing records (on ``bridges``); bring back the proxies and
        rules of live owners (after a daemon restart)."""
        expected = {(r[1], r[2], r[3], r[5], r[4]) for r in self.rows()}
        for bridge in bridges:
            fw = self._firewall_for(bridge)
            with contextlib.suppress(FirewallError):
                for rule in fw.ports():
                    if rule not in expected:
                        fw.remove_port(*rule)
                        proto, host_ip, host_port, ip, port = rule
                        done["rules"].append(f"{host_ip}:{host_port}/{proto}->{ip}:{port}")
        for owner in sorted(live):
            if owner not in self._proxies and (rows := self.rows(owner)):
                self._restore(owner, rows)
                done["restored"].append(owner)

    def _restore(self, owner: str, rows: list[tuple]) -> None:
        """Re-create the DNAT rules and proxies of a live owner's recorded ports."""
        proxy = PortProxy(self.udp_idle_timeout)
        ip = rows[0][5]
        for _, proto, host_ip, host_port, cport, row_ip, bridge in rows:
            ip = row_ip
            binding = PortBinding(proto, host_ip, host_port, cport)
            self._firewall_for(bridge).add_port(proto, host_ip, host_port, row_ip, cport)
            try:
                proxy.reserve([binding])
            except HyperError as exc:
                log.warning("cannot re-open proxy for %s of %s: %s", binding, owner, exc.message)
        if proxy.bindings:
            self._loop_thread().run(proxy.start(ip))
            self._proxies.setdefault(owner, []).append(proxy)

    def close(self) -> None:
        """Stop the proxies and the proxy thread; keep rules and records (live restore)."""
        with self._lock:
            for owner in list(self._proxies):
                for proxy in self._proxies.pop(owner):
                    self._close_proxy(proxy)
            if self._loop is not None:
                self._loop.stop()
                self._loop = None
