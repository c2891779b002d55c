"""The embedded DNS server of user-defined networks (Docker's 127.0.0.11, on the gateway).

A VM has no loopback shared with the host, so where Docker answers on 127.0.0.11 inside
each container, hyperd answers on each user-defined network's gateway address, port 53, UDP
and TCP; containers on such a network get ``nameserver <gateway>`` in /etc/resolv.conf. A
query is answered for the container that asked, known by its source address on that
network (``lookup``): A records for the names it resolves (hyperd/containers/hosts.py:
peers by name, alias, short ID and hostname, and its own links), NOERROR without answers
for other types of a known name (the networks are IPv4), PTR for known addresses. Every
other name is forwarded to the container's upstream servers (its ``--dns``, else the
host's; none when all its networks are internal), the reply passed back as it came; SERVFAIL
when none answers in time.

A query from an address that is no running container's on that network is REFUSED: the
server is not an open resolver for whatever else reaches the bridge. Malformed packets are
dropped and logged at debug level only, so a noisy guest cannot fill the log.

The wire format is dnslib's (parsing and building DNS messages by hand is error-prone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE, RR, A, DNSError, DNSRecord
from dnslib.dns import PTR

log = logging.getLogger(__name__)

PORT = 53
TTL = 600  # Docker's embedded server answers with this TTL
UPSTREAM_TIMEOUT = 3.0  # per upstream server
UDP_MAX = 512  # without EDNS0, a UDP answer larger than this is truncated
TCP_IDLE = 10.0  # seconds a TCP client may stay silent between queries
MAX_INFLIGHT = 256  # UDP queries being answered at once (forwards wait for upstreams)
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)


@dataclass(frozen=True)
class Client:
    """What the server knows of the container that asked: its names and its upstreams."""

    table: Mapping[str, Sequence[str]]  # lower-case name without trailing dot -> IPv4s
    upstream: Sequence[str] = field(default_factory=tuple)


Lookup = Callable[[str, str], "Client | None"]  # (network ID, source IP) -> Client


def parse(data: bytes) -> DNSRecord | None:
    """The message, or None when it is not one (truncated, garbage, trailing junk)."""
    try:
        return DNSRecord.parse(data)
    except (DNSError, struct.error, IndexError, ValueError, UnicodeError) as exc:
        log.debug("dropping a malformed DNS packet (%d bytes): %s", len(data), exc)
        return None


def error_reply(request: DNSRecord, rcode: int) -> bytes:
    """A reply carrying only ``rcode`` (REFUSED, SERVFAIL, NOTIMP, FORMERR)."""
    return _with_rcode(request, rcode).pack()


def answer(request: DNSRecord, table: Mapping[str, Sequence[str]]) -> DNSRecord | None:
    """The reply from ``table``, or None when the question is not ours to answer (forward
    it). Non-queries get NOTIMP, a query without exactly one question FORMERR."""
    if request.header.opcode != 0 or request.header.qr:
        return _with_rcode(request, RCODE.NOTIMP)
    if len(request.questions) != 1:
        return _with_rcode(request, RCODE.FORMERR)
    q = request.q
    name = str(q.qname).rstrip(".").lower()
    if q.qtype == QTYPE.PTR:
        return _reverse(request, name, table)
    ips = table.get(name)
    if not ips:
        return None
    reply = request.reply()
    if q.qtype in (QTYPE.A, QTYPE.ANY):
        for ip in ips:
            reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
    return reply


def _with_rcode(request: DNSRecord, rcode: int) -> DNSRecord:
    reply = request.reply()
    reply.header.rcode = rcode
    return reply


def _reverse(request: DNSRecord, name: str, table) -> DNSRecord | None:
    """PTR for an address of the table (its first name), else None (forward)."""
    if not name.endswith(".in-addr.arpa"):
        return None
    octets = name.removesuffix(".in-addr.arpa").split(".")
    if len(octets) != 4:
        return None
    ip = ".".join(reversed(octets))
    found = next((n for n, ips in table.items() if ip in ips), None)
    if found is None:
        return None
    reply = request.reply()
    reply.add_answer(RR(request.q.qname, QTYPE.PTR, rdata=PTR(found + "."), ttl=TTL))
    return reply


async def resolve(
    data: bytes, client: Client | None, tcp: bool = False, port: int = PORT
) -> bytes | None:
    """The reply to one query from ``client`` (None: an unknown source); None to drop it.
    ``port``: the upstream servers' (53 but in tests)."""
    request = parse(data)
    if request is None:
        return None
    if client is None:
        return error_reply(request, RCODE.REFUSED)
    local = answer(request, client.table)
    if local is not None:
        packed = local.pack()
        if not tcp and len(packed) > UDP_MAX:
            packed = local.truncate().pack()  # TC set: the client asks again over TCP
        return packed
    reply = await forward(data, client.upstream, tcp, port)
    return reply if reply is not None else error_reply(request, RCODE.SERVFAIL)


async def forward(
    data: bytes, upstream: Sequence[str], tcp: bool = False, port: int = PORT
) -> bytes | None:
    """The first upstream server's reply to the query, as it came; None when none answers."""
    for server in upstream:
        try:
            ask = _ask_tcp if tcp else _ask_udp
            return await asyncio.wait_for(ask(data, server, port), UPSTREAM_TIMEOUT)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.debug("upstream DNS %s did not answer: %r", server, exc)
    return None


class _OneReply(asyncio.DatagramProtocol):
    def __init__(self, query_id: bytes):
        self.query_id = query_id
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr) -> None:
        if data[:2] == self.query_id and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def _ask_udp(data: bytes, server: str, port: int) -> bytes:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _OneReply(data[:2]), remote_addr=(server, port)
    )
    try:
        transport.sendto(data)
        return await proto.reply
    finally:
        transport.close()


async def _ask_tcp(data: bytes, server: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(server, port)
    try:
        writer.write(struct.pack("!H", len(data)) + data)
        await writer.drain()
        (size,) = struct.unpack("!H", await reader.readexactly(2))
        return await reader.readexactly(size)
    finally:
        writer.close()


class _Udp(asyncio.DatagramProtocol):
    """One gateway's UDP socket: each query is answered in a task of its own."""

    def __init__(self, server: DnsServer, network: str):
        self.server, self.network = server, network
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if len(self.server._tasks) < MAX_INFLIGHT:  # a flood is dropped, not queued
            self.server.spawn(self._handle(data, addr))

    async def _handle(self, data: bytes, addr) -> None:
        client = self.server.lookup(self.network, addr[0])
        reply = await resolve(data, client, port=self.server.port)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("DNS socket of network %s: %s", self.network[:12], exc)


def _bound(gateway: str, port: int, kind: int) -> socket.socket:
    """A socket on gateway:53 (free-bind: the bridge's address may still be settling)."""
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        sock.bind((gateway, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass
class _Listener:
    gateway: str
    udp: asyncio.DatagramTransport
    tcp: asyncio.Server


class DnsServer:
    """The embedded DNS of every user-defined network: one UDP and one TCP socket on each
    gateway address. ``sync`` follows the networks (created, removed, restored at start)."""

    def __init__(self, lookup: Lookup, port: int = PORT):
        self.lookup = lookup
        self.port = port  # to serve on and to ask upstream servers on (53 but in tests)
        self._listeners: dict[str, _Listener] = {}  # network ID -> its sockets
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro) -> None:
        """Run one query's work in the background (kept referenced until it ends)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("DNS query failed: %r", task.exception())

    @property
    def gateways(self) -> dict[str, str]:
        """Network ID -> the address served on."""
        return {nid: lis.gateway for nid, lis in self._listeners.items()}

    async def sync(self, gateways: Mapping[str, str]) -> None:
        """Serve exactly these networks (network ID -> gateway address)."""
        for nid in list(self._listeners):
            if gateways.get(nid) != self._listeners[nid].gateway:
                self._stop(nid)
        for nid, gateway in gateways.items():
            if nid not in self._listeners:
                try:
                    self._listeners[nid] = await self._listen(nid, gateway)
                except OSError as exc:
                    log.error(
                        "no embedded DNS on %s:%d (network %s): %s",
                        gateway,
                        self.port,
                        nid[:12],
                        exc,
                    )

    async def _listen(self, nid: str, gateway: str) -> _Listener:
        loop = asyncio.get_running_loop()
        udp, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self, nid), sock=_bound(gateway, self.port, socket.SOCK_DGRAM)
        )
        try:
            tcp_sock = _bound(gateway, self.port, socket.SOCK_STREAM)
            tcp = await asyncio.start_server(lambda r, w: self._serve_tcp(nid, r, w), sock=tcp_sock)
        except BaseException:
            udp.close()
            raise
        log.info("embedded DNS of network %s on %s:%d", nid[:12], gateway, self.port)
        return _Listener(gateway, udp, tcp)

    async def _serve_tcp(self, nid: str, reader, writer) -> None:
        """Length-prefixed queries on one connection, answered in order (RFC 7766)."""
        client = self.lookup(nid, writer.get_extra_info("peername")[0])
        try:
            while True:
                (size,) = struct.unpack(
                    "!H", await asyncio.wait_for(reader.readexactly(2), TCP_IDLE)
                )
                reply = await resolve(await reader.readexactly(size), client, True, self.port)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # a guest's bytes must never reach asyncio's error log
            log.debug("DNS over TCP from network %s failed: %r", nid[:12], exc)
        finally:
            writer.close()

    def _stop(self, nid: str) -> None:
        lis = self._listeners.pop(nid)
        lis.udp.close()
        lis.tcp.close()
        log.info("embedded DNS of network %s on %s stopped", nid[:12], lis.gateway)

    async def close(self) -> None:
        """Stop serving every network and drop queries in flight."""
        for nid in list(self._listeners):
            self._stop(nid)
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
