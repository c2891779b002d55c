"""/etc/hosts of a container: itself, the containers it shares a network with (by name and
by their aliases on that network), its links and its extra hosts (``--add-host``).

Names resolve per network, as Docker's embedded DNS does: a container on networks A and B
sees A's containers by their A addresses and aliases and B's by theirs, and nothing of a
network it is not on. The daemon rewrites the file on every start, stop, rename, connect
and disconnect.
"""

from __future__ import annotations

from collections.abc import Iterable

from .model import Container


def hosts_file(c: Container, peers: Iterable[Container], gateway_ip: str = "") -> bytes:
    """The file's bytes; ``peers`` are the running containers (c may be among them)."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    mine = {n: a for n, a in c.networks.items() if a.ip}
    for att in mine.values():
        lines.append(_line(att.ip, [c.config.hostname, c.name, *att.aliases]))
    if not mine:
        lines.append(f"127.0.1.1\t{c.config.hostname}")
    others = [o for o in peers if o.id != c.id]
    for other in others:
        for net, att in other.networks.items():
            if net in mine and att.ip:
                lines.append(_line(att.ip, [other.name, *att.aliases]))
    by_name = {o.name: o for o in others}
    links = [(None, link) for link in c.host.links]
    links += [(net, link) for net, att in mine.items() for link in att.links]
    for net, link in links:
        name, _, alias = link.partition(":")
        ip = _shared_ip(by_name.get(name), mine, net)
        if ip:
            lines.append(f"{ip}\t{alias or name}")
    for entry in c.host.extra_hosts:
        host, _, ip = entry.partition(":")
        lines.append(f"{gateway_ip if ip == 'host-gateway' else ip}\t{host}")
    return ("\n".join(lines) + "\n").encode()


def _shared_ip(target: Container | None, mine: dict, net: str | None) -> str:
    """The target's address on ``net`` (or on the first network shared with it)."""
    if target is None:
        return ""
    for name, att in target.networks.items():
        if att.ip and name in mine and (net is None or name == net):
            return att.ip
    return ""


def _line(ip: str, names: list[str]) -> str:
    return f"{ip}\t{' '.join(dict.fromkeys(n for n in names if n))}"
