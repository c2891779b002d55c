"""The embedded DNS server: answers from a fixed table, forwarding, refusal, malformed
packets; over real sockets on loopback (an upstream of the test's own on another address)."""

from __future__ import annotations

import asyncio
import socket
import struct

from dnslib import QTYPE, RCODE, DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperd.network import dns

TABLE = {"web": ["10.1.0.3", "10.2.0.3"], "bar": ["10.1.0.4"]}


def _ask(name: str, qtype: str = "A") -> DNSRecord:
    return DNSRecord.question(name, qtype)


def _ips(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr]


def test_a_records_for_known_names_any_case_and_trailing_dot():
    for name in ("web", "WEB.", "Web"):
        reply = dns.answer(_ask(name), TABLE)
        assert reply.header.rcode == RCODE.NOERROR and _ips(reply) == ["10.1.0.3", "10.2.0.3"]
        assert str(reply.q.qname).rstrip(".") == name.rstrip(".")  # the question as asked


def test_aaaa_of_a_known_name_is_nodata_and_unknown_names_are_not_ours():
    reply = dns.answer(_ask("bar", "AAAA"), TABLE)
    assert reply.header.rcode == RCODE.NOERROR and reply.rr == []
    assert dns.answer(_ask("nosuch"), TABLE) is None
    assert dns.answer(_ask("bar.example"), TABLE) is None


def test_ptr_for_known_addresses_only():
    reply = dns.answer(_ask("4.0.1.10.in-addr.arpa", "PTR"), TABLE)
    assert _ips(reply) == ["bar."]
    assert dns.answer(_ask("9.9.9.9.in-addr.arpa", "PTR"), TABLE) is None


def test_non_queries_and_odd_question_counts():
    notify = _ask("web")
    notify.header.opcode = 4
    assert dns.answer(notify, TABLE).header.rcode == RCODE.NOTIMP
    empty = DNSRecord()
    assert dns.answer(empty, TABLE).header.rcode == RCODE.FORMERR


MALFORMED = [
    b"",
    b"\x12",
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00",  # a question announced, none sent
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",  # pointer loop
    _ask("web").pack()[:-3],  # cut short
    b"\xff" * 600,
]


def test_malformed_packets_are_dropped():
    client = dns.Client(TABLE)
    for data in MALFORMED:
        assert asyncio.run(dns.resolve(data, client)) is None, data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_no_packet_raises(data):
    reply = asyncio.run(dns.resolve(data, dns.Client(TABLE)))
    assert reply is None or DNSRecord.parse(reply).header.qr == 1


def test_unknown_sources_are_refused_and_no_upstream_is_servfail():
    query = _ask("web").pack()
    assert DNSRecord.parse(asyncio.run(dns.resolve(query, None))).header.rcode == RCODE.REFUSED
    nosuch = _ask("nosuch").pack()
    reply = asyncio.run(dns.resolve(nosuch, dns.Client(TABLE)))
    assert DNSRecord.parse(reply).header.rcode == RCODE.SERVFAIL


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Upstream(asyncio.DatagramProtocol):
    """Answers ``up.example`` with 10.9.9.9 and everything else NXDOMAIN."""

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        req = DNSRecord.parse(data)
        reply = req.reply()
        if str(req.q.qname) == "up.example.":
            reply.add_answer(*dns.RR.fromZone("up.example. 60 A 10.9.9.9"))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        self.transport.sendto(reply.pack(), addr)


async def _exchange(port: int, query: DNSRecord, tcp: bool = False) -> DNSRecord:
    if tcp:
        reader, writer = await asyncio.open_connection("127.0.0.2", port)
        data = query.pack()
        writer.write(struct.pack("!H", len(data)) + data)
        (size,) = struct.unpack("!H", await reader.readexactly(2))
        reply = await reader.readexactly(size)
        writer.close()
        return DNSRecord.parse(reply)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.2", port))
    await loop.sock_sendall(sock, query.pack())
    reply = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
    sock.close()
    return DNSRecord.parse(reply)


def test_server_answers_forwards_refuses_and_follows_networks():
    async def go():
        port = _free_port()
        loop = asyncio.get_running_loop()
        up, _ = await loop.create_datagram_endpoint(_Upstream, local_addr=("127.0.0.1", port))
        seen = []

        def lookup(network, ip):
            seen.append((network, ip))
            return dns.Client(TABLE, ["127.0.0.1"]) if ip == "127.0.0.1" else None

        server = dns.DnsServer(lookup, port)
        await server.sync({"net1": "127.0.0.2"})
        try:
            assert _ips(await _exchange(port, _ask("web"))) == ["10.1.0.3", "10.2.0.3"]
            assert _ips(await _exchange(port, _ask("BAR."), tcp=True)) == ["10.1.0.4"]
            assert _ips(await _exchange(port, _ask("up.example"))) == ["10.9.9.9"]
            nx = await _exchange(port, _ask("nosuch.example"))
            assert nx.header.rcode == RCODE.NXDOMAIN  # the upstream's answer, passed on
            assert seen[0] == ("net1", "127.0.0.1")
            await server.sync({})
            assert server.gateways == {}
        finally:
            await server.close()
            up.close()

    asyncio.run(go())


def test_big_udp_answers_are_truncated():
    many = {"big": [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(60)]}
    reply = asyncio.run(dns.resolve(_ask("big").pack(), dns.Client(many)))
    parsed = DNSRecord.parse(reply)
    assert len(reply) <= 512 and parsed.header.tc == 1
    full = asyncio.run(dns.resolve(_ask("big").pack(), dns.Client(many), tcp=True))
    assert len(DNSRecord.parse(full).rr) == 60 and DNSRecord.parse(full).rr[0].rtype == QTYPE.A
