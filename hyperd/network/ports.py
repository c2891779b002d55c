"""Published ports: the userland proxy behind each port.

Parsing of the ``-p``/``-P`` syntax lives in ``hyperapi.portspec`` (the CLI uses it too).

The proxy (``PortProxy``) listens on ``host_ip:host_port`` for every binding and forwards to
the container's address. The kernel's DNAT rules (firewall.py) take the traffic that comes
from other hosts and to the host's non-loopback addresses, so the proxy mostly serves
``127.0.0.1:PORT``, which DNAT in OUTPUT cannot; it also holds the port, so nothing else on
the host can take it, and binding it up front is how a port in use is found (Conflict) before
any VM boots. TCP is forwarded half-close aware; UDP per client address, with an idle timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Iterable
from dataclasses import replace

from hyperapi.portspec import PortBinding
from hyperd.errors import Conflict, InvalidArgument

log = logging.getLogger(__name__)

CHUNK = 65536
CONNECT_TIMEOUT = 10.0
UDP_IDLE_TIMEOUT = 90.0  # Docker's userland proxy uses 90 s too
UDP_MAX_FLOWS = 4096


# -- proxy ------------------------------------------------------------------------------


def _bind(binding: PortBinding) -> socket.socket:
    kind = socket.SOCK_STREAM if binding.proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if binding.proto == "tcp":  # lets a restarted daemon rebind past TIME_WAIT
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((binding.host_ip or "0.0.0.0", binding.host_port))
    except OSError as exc:
        sock.close()
        where = f"{binding.host_ip}:{binding.host_port}"
        if exc.errno == errno.EADDRINUSE:
            raise Conflict(
                f"port {binding.host_port}/{binding.proto} is already in use: "
                f"cannot bind {where} ({exc.strerror})"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise InvalidArgument(
                f"cannot publish on {where}/{binding.proto}: {binding.host_ip} is not an "
                "address of this host"
            ) from None
        raise Conflict(f"cannot bind {where}/{binding.proto}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side (or close it if it cannot)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        else:
            writer.close()
    except (ConnectionError, OSError):
        writer.close()


class _UdpFlow(asyncio.DatagramProtocol):
    """One client's flow: a connected socket towards the container."""

    def __init__(self, proxy: _UdpListener, client: tuple):
        self.proxy, self.client = proxy, client
        self.transport: asyncio.DatagramTransport | None = None
        self.last = time.monotonic()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.last = time.monotonic()
        if self.proxy.transport is not None:
            self.proxy.transport.sendto(data, self.client)

    def error_received(self, exc):  # e.g. ICMP port unreachable from the container
        log.debug("udp flow %s: %s", self.client, exc)

    def connection_lost(self, exc):
        self.proxy.flows.pop(self.client, None)


class _UdpListener(asyncio.DatagramProtocol):
    def __init__(self, target: tuple[str, int], idle: float):
        self.target, self.idle = target, idle
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[tuple, _UdpFlow] = {}
        self.pending: dict[tuple, list[bytes]] = {}

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        flow = self.flows.get(addr)
        if flow is not None and flow.transport is not None:
            flow.last = time.monotonic()
            flow.transport.sendto(data)
        elif addr in self.pending:
            self.pending[addr].append(data)
        elif len(self.flows) + len(self.pending) < UDP_MAX_FLOWS:
            self.pending[addr] = [data]
            asyncio.get_running_loop().create_task(self._open(addr))

    async def _open(self, addr):
        loop = asyncio.get_running_loop()
        try:
            transport, flow = await loop.create_datagram_endpoint(
                lambda: _UdpFlow(self, addr), remote_addr=self.target
            )
        except OSError as exc:
            log.debug("udp flow to %s: %s", self.target, exc)
            self.pending.pop(addr, None)
            return
        self.flows[addr] = flow
        for data in self.pending.pop(addr, []):
            transport.sendto(data)

    def sweep(self) -> None:
        now = time.monotonic()
        for flow in list(self.flows.values()):
            if now - flow.last > self.idle and flow.transport is not None:
                flow.transport.close()

    def close(self) -> None:
        for flow in list(self.flows.values()):
            if flow.transport is not None:
                flow.transport.close()
        if self.transport is not None:
            self.transport.close()


class PortProxy:
    """The listening sockets of one container's published ports and their forwarding."""

    def __init__(self, udp_idle_timeout: float = UDP_IDLE_TIMEOUT):
        self.udp_idle_timeout = udp_idle_timeout
        self.bindings: list[PortBinding] = []
        self._socks: list[socket.socket] = []
        self._servers: list[asyncio.base_events.Server] = []
        self._udp: list[_UdpListener] = []
        self._conns: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None

    def reserve(self, bindings: Iterable[PortBinding]) -> list[PortBinding]:
        """Bind every port now (all or none); random ports get their real number."""
        bound: list[tuple[PortBinding, socket.socket]] = []
        try:
            for b in bindings:
                sock = _bind(b)
                bound.append((replace(b, host_port=sock.getsockname()[1]), sock))
        except BaseException:
            for _, sock in bound:
                sock.close()
            raise
        self.bindings.extend(b for b, _ in bound)
        self._socks.extend(s for _, s in bound)
        return [b for b, _ in bound]

    async def start(self, ip: str) -> None:
        """Forward every reserved port to the container at ``ip``."""
        loop = asyncio.get_running_loop()
        for b, sock in zip(self.bindings, self._socks, strict=True):
            target = (ip, b.container_port)
            if b.proto == "tcp":
                server = await asyncio.start_server(
                    lambda r, w, t=target: self._tcp(r, w, t), sock=sock, backlog=512
                )
                self._servers.append(server)
            else:
                _, proto = await loop.create_datagram_endpoint(
                    lambda t=target: _UdpListener(t, self.udp_idle_timeout), sock=sock
                )
                self._udp.append(proto)
        self._socks = []
        if self._udp and self._sweeper is None:
            self._sweeper = loop.create_task(self._sweep())

    async def _tcp(self, reader, writer, target) -> None:
        task = asyncio.current_task()
        self._conns.add(task)
        upstream = None
        try:
            try:
                r2, upstream = await asyncio.wait_for(
                    asyncio.open_connection(*target), CONNECT_TIMEOUT
                )
            except (TimeoutError, OSError) as exc:
                log.debug("proxy to %s:%d: %s", target[0], target[1], exc)
                return
            await asyncio.gather(_pump(reader, upstream), _pump(r2, writer))
        finally:
            for w in (upstream, writer):
                if w is not None:
                    w.close()
            self._conns.discard(task)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(max(0.05, min(self.udp_idle_timeout / 2, 5.0)))
            for udp in self._udp:
                udp.sweep()

    async def close(self) -> None:
        """Stop listening, drop open connections and flows, free the ports."""
        for sock in self._socks:
            sock.close()
        self._socks = []
        for server in self._servers:
            server.close()
        for udp in self._udp:
            udp.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers, self._udp = [], []
