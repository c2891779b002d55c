"""Helpers for bodies that run inside a test's own network namespace."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

from pyroute2 import IPRoute


def add_veth(name: str, address: str, prefix: int = 32) -> None:
    """A veth pair with ``address`` on ``name``, both ends up: a local address to serve on."""
    with IPRoute() as ipr:
        ipr.link("add", ifname=name, kind="veth", peer=name + "p")
        index = ipr.link_lookup(ifname=name)[0]
        ipr.addr("add", index=index, address=address, prefixlen=prefix)
        for ifname in (name, name + "p"):
            ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], state="up")


class EchoServer:
    """A TCP or UDP server on (host, port) that answers every payload with b"echo:" + it.

    TCP: reads to EOF, then sends everything back prefixed and closes (tests half-close).
    """

    def __init__(self, host: str, port: int = 0, proto: str = "tcp"):
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.proto = proto
        self.peers: list[tuple] = []
        if proto == "tcp":
            self.sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                if self.proto == "udp":
                    data, addr = self.sock.recvfrom(65536)
                    self.peers.append(addr)
                    self.sock.sendto(b"echo:" + data, addr)
                    continue
                conn, addr = self.sock.accept()
            except OSError:
                return
            self.peers.append(addr)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _handle(conn):
        with conn:
            chunks = []
            while data := conn.recv(65536):
                chunks.append(data)
            conn.sendall(b"echo:" + b"".join(chunks))

    def close(self):
        self.sock.close()


def tcp_roundtrip(host: str, port: int, payload: bytes, timeout: float = 10.0) -> bytes:
    """Send payload, half-close, read the whole answer."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def udp_roundtrip(host: str, port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, (host, port))
        data, _ = s.recvfrom(65536)
    return data


class Guest:
    """A stand-in VM: a process in a network namespace of its own, wired to a bridge by a
    veth pair, with an address and a default route. Dies (with its namespace) on close()."""

    LISTEN = (
        "import socket, sys, time\ns = socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('0.0.0.0', int(sys.argv[1])))\ns.listen(64)\ntime.sleep(120)\n"
    )
    CONNECT = (
        "import socket, sys\ns = socket.socket()\ns.settimeout(float(sys.argv[3]))\n"
        "raise SystemExit(s.connect_ex((sys.argv[1], int(sys.argv[2]))))\n"
    )

    def __init__(self, name: str, bridge: str, cidr: str, gateway: str = ""):
        self.proc = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        self.name = name
        time.sleep(0.1)
        with IPRoute() as ipr:
            ipr.link("add", ifname=name, kind="veth", peer=name + "g")
            host = ipr.link_lookup(ifname=name)[0]
            ipr.link("set", index=host, master=ipr.link_lookup(ifname=bridge)[0], state="up")
            inner = ipr.link_lookup(ifname=name + "g")[0]
            ipr.link("set", index=inner, net_ns_pid=self.proc.pid)
        self.sh(f"ip link set lo up && ip link set {name}g up && ip addr add {cidr} dev {name}g")
        if gateway:
            self.sh(f"ip route add default via {gateway}")
        self.servers: list[subprocess.Popen] = []

    def _in(self, *cmd: str) -> list[str]:
        return ["nsenter", "-t", str(self.proc.pid), "-n", *cmd]

    def sh(self, script: str) -> None:
        subprocess.run(self._in("sh", "-c", script), check=True, capture_output=True)

    def listen(self, port: int) -> None:
        """A TCP listener on every address of the guest."""
        self.servers.append(
            subprocess.Popen(self._in(sys.executable, "-c", self.LISTEN, str(port)))
        )
        time.sleep(0.3)

    def reaches(self, ip: str, port: int, timeout: float = 2.0) -> bool:
        """Does a TCP connection from the guest to ip:port succeed?"""
        code = subprocess.run(
            self._in(sys.executable, "-c", self.CONNECT, ip, str(port), str(timeout))
        ).returncode
        return code == 0

    def close(self) -> None:
        for proc in [*self.servers, self.proc]:
            proc.kill()
            proc.wait()
