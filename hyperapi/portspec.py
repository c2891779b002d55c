"""Docker's published-port syntax, shared by the CLI (flags) and the daemon (network).

Parsing (``parse_ports``) accepts what ``docker run -p`` accepts for IPv4:

    [ip:][hostPort:]containerPort[/tcp|/udp]     80   8080:80   127.0.0.1:8080:80/udp
    ranges of equal length                        8000-8002:80-82   80-82 (random host ports)
    an empty host port means a random one         127.0.0.1::80   :80

and ``-P`` publishes every EXPOSEd port (``"80/tcp"`` keys) on a random host port, except those
``-p`` already maps. A host port of 0 stands for "random" until ``PortProxy.reserve`` binds it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hyperapi.errors import InvalidArgument

PROTOS = ("tcp", "udp")


@dataclass(frozen=True)
class PortBinding:
    """One published port: host ``host_ip:host_port`` -> container ``container_port``."""

    proto: str
    host_ip: str
    host_port: int
    container_port: int

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.host_port}->{self.container_port}/{self.proto}"


# -- parsing ----------------------------------------------------------------------------

_SPEC = re.compile(r"^(?:(?P<ip>[^:]*):)?(?:(?P<host>[^:]*):)?(?P<ctr>[^:/]+)(?:/(?P<proto>.*))?$")


def _range(text: str, spec: str, what: str, allow_zero: bool = False) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    try:
        first, last = int(lo), int(hi if sep else lo)
    except ValueError:
        raise InvalidArgument(f"invalid port spec {spec!r}: bad {what} {text!r}") from None
    low = 0 if allow_zero else 1
    if not (low <= first <= 65535 and low <= last <= 65535) or last < first:
        raise InvalidArgument(f"invalid port spec {spec!r}: {what} {text!r} out of range")
    if allow_zero and first == 0 and last != 0:
        raise InvalidArgument(f"invalid port spec {spec!r}: {what} range cannot start at 0")
    return first, last


def parse_port_spec(spec: str) -> list[PortBinding]:
    """The bindings of one ``-p`` value (a range gives several)."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidArgument(f"invalid port spec {spec!r}: empty")
    text = spec.strip()
    if text.startswith("[") or text.count(":") > 2:
        raise InvalidArgument(f"invalid port spec {spec!r}: IPv6 host addresses are not supported")
    m = _SPEC.match(text)
    if not m:
        raise InvalidArgument(f"invalid port spec {spec!r}")
    ip, host, ctr, proto = m["ip"], m["host"], m["ctr"], m["proto"]
    if ip is not None and host is None:  # "hostPort:containerPort" matched the ip group
        ip, host = None, ip
    proto = (proto if proto is not None else "tcp").lower()
    if proto not in PROTOS:
        raise InvalidArgument(f"invalid port spec {spec!r}: protocol must be tcp or udp")
    host_ip = ip or "0.0.0.0"
    try:
        ipaddress.IPv4Address(host_ip)
    except ValueError:
        raise InvalidArgument(f"invalid port spec {spec!r}: bad host IP {ip!r}") from None
    c_first, c_last = _range(ctr, spec, "container port")
    count = c_last - c_first + 1
    if host:
        h_first, h_last = _range(host, spec, "host port", allow_zero=True)
        if h_first == 0:
            hosts = [0] * count
        elif h_last - h_first + 1 != count:
            raise InvalidArgument(
                f"invalid port spec {spec!r}: host range and container range differ in length"
            )
        else:
            hosts = list(range(h_first, h_last + 1))
    else:
        hosts = [0] * count
    return [
        PortBinding(proto, host_ip, h, c)
        for h, c in zip(hosts, range(c_first, c_last + 1), strict=True)
    ]


def parse_exposed(key: str) -> tuple[int, str]:
    """An EXPOSE key (``"80/tcp"``, ``"53/udp"``, ``"8080"``) as (port, proto)."""
    port, _, proto = str(key).partition("/")
    proto = (proto or "tcp").lower()
    try:
        number = int(port)
    except ValueError:
        raise InvalidArgument(f"invalid exposed port {key!r}") from None
    if proto not in PROTOS or not 1 <= number <= 65535:
        raise InvalidArgument(f"invalid exposed port {key!r}")
    return number, proto


def parse_ports(
    specs: Iterable[str] = (), publish_all: bool = False, exposed: Iterable[str] = ()
) -> list[PortBinding]:
    """``-p`` specs, then with ``-P`` every exposed port not mapped yet (random host ports)."""
    out: list[PortBinding] = []
    for spec in specs:
        out.extend(parse_port_spec(spec))
    if publish_all:
        mapped = {(b.container_port, b.proto) for b in out}
        for key in exposed:
            port, proto = parse_exposed(key)
            if (port, proto) not in mapped:
                mapped.add((port, proto))
                out.append(PortBinding(proto, "0.0.0.0", 0, port))
    seen: set[tuple[str, str, int]] = set()
    for b in out:
        key = (b.proto, b.host_ip, b.host_port)
        if b.host_port and key in seen:
            raise InvalidArgument(f"host port {b.host_ip}:{b.host_port}/{b.proto} is given twice")
        seen.add(key)
    return out
