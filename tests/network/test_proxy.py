"""The userland proxy: TCP and UDP forwarding, port conflicts (fresh namespace per test)."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from hyperapi.portspec import PortBinding
from hyperd.errors import Conflict, InvalidArgument
from hyperd.network.ports import PortProxy

from .common import EchoServer, add_veth, tcp_roundtrip, udp_roundtrip
from .netns import in_netns


def _tcp():
    add_veth("ctr0", "10.213.0.2")
    server = EchoServer("10.213.0.2", 80)

    async def main():
        proxy = PortProxy()
        (b,) = proxy.reserve([PortBinding("tcp", "0.0.0.0", 0, 80)])
        assert b.host_port > 0
        await proxy.start("10.213.0.2")
        payloads = [b"", b"hello", os.urandom(3 << 20)]
        for payload in payloads:
            got = await asyncio.to_thread(tcp_roundtrip, "127.0.0.1", b.host_port, payload)
            assert got == b"echo:" + payload
        # several at once
        many = await asyncio.gather(
            *(
                asyncio.to_thread(tcp_roundtrip, "127.0.0.1", b.host_port, bytes([i]) * 100_000)
                for i in range(10)
            )
        )
        assert many == [b"echo:" + bytes([i]) * 100_000 for i in range(10)]
        await proxy.close()
        with pytest.raises(ConnectionRefusedError):
            tcp_roundtrip("127.0.0.1", b.host_port, b"x")

    asyncio.run(main())
    server.close()


def test_tcp_proxy_roundtrips_bytes_exactly():
    in_netns(_tcp)


def _udp():
    add_veth("ctr0", "10.213.0.2")
    server = EchoServer("10.213.0.2", 53, proto="udp")

    async def main():
        proxy = PortProxy(udp_idle_timeout=0.3)
        (b,) = proxy.reserve([PortBinding("udp", "127.0.0.1", 0, 53)])
        await proxy.start("10.213.0.2")
        payload = os.urandom(1400)
        got = await asyncio.to_thread(udp_roundtrip, "127.0.0.1", b.host_port, payload)
        assert got == b"echo:" + payload
        # two clients, each gets its own flow and its own answers
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c1,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c2,
        ):
            for c in (c1, c2):
                c.settimeout(5)
            c1.sendto(b"one", ("127.0.0.1", b.host_port))
            c2.sendto(b"two", ("127.0.0.1", b.host_port))
            r1 = await asyncio.to_thread(c1.recvfrom, 100)
            r2 = await asyncio.to_thread(c2.recvfrom, 100)
            assert (r1[0], r2[0]) == (b"echo:one", b"echo:two")
            listener = proxy._udp[0]
            assert len(listener.flows) >= 2
            await asyncio.sleep(1.0)  # idle timeout closes the flows
            assert listener.flows == {}
            c1.sendto(b"again", ("127.0.0.1", b.host_port))  # a new flow opens
            assert (await asyncio.to_thread(c1.recvfrom, 100))[0] == b"echo:again"
        await proxy.close()

    asyncio.run(main())
    server.close()


def test_udp_proxy_flows_and_idle_timeout():
    in_netns(_udp)


def _conflict():
    busy = socket.socket()
    busy.bind(("0.0.0.0", 8080))
    busy.listen()
    proxy = PortProxy()
    with pytest.raises(Conflict, match=r"port 8080/tcp is already in use"):
        proxy.reserve([PortBinding("tcp", "0.0.0.0", 9090, 80), PortBinding("tcp", "", 8080, 80)])
    # all or nothing: 9090 was released again
    s = socket.socket()
    s.bind(("0.0.0.0", 9090))
    s.close()
    assert proxy.bindings == []
    # a specific address on a port bound to the wildcard is in use too
    with pytest.raises(Conflict):
        PortProxy().reserve([PortBinding("tcp", "127.0.0.1", 8080, 80)])
    # udp is a separate namespace of ports
    p = PortProxy()
    assert p.reserve([PortBinding("udp", "0.0.0.0", 8080, 80)])[0].host_port == 8080
    asyncio.run(p.close())
    with pytest.raises(InvalidArgument, match="not an address of this host"):
        PortProxy().reserve([PortBinding("tcp", "10.99.99.99", 8080, 80)])
    busy.close()


def test_port_in_use_is_conflict():
    in_netns(_conflict)
