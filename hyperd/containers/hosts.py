"""/etc/hosts of a container: itself, the containers it shares a network with (by name and
alias), its links and its extra hosts (``--add-host``)."""

from __future__ import annotations

from collections.abc import Iterable

from .model import Container


def hosts_file(c: Container, peers: Iterable[Container], gateway_ip: str = "") -> bytes:
    """The file's bytes; ``peers`` are the other running containers."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    own = [c.config.hostname, c.name]
    mine = {n: a for n, a in c.networks.items() if a.ip}
    for att in mine.values():
        lines.append(f"{att.ip}\t{' '.join(_unique([*own, *att.aliases]))}")
    if not mine:
        lines.append(f"127.0.1.1\t{c.config.hostname}")
    by_name = {}
    for other in peers:
        by_name[other.name] = other
        for net, att in other.networks.items():
            if net in mine and att.ip and other.id != c.id:
                lines.append(f"{att.ip}\t{' '.join(_unique([other.name, *att.aliases]))}")
    for link in [*c.host.links, *(x for a in mine.values() for x in a.links)]:
        name, _, alias = link.partition(":")
        target = by_name.get(name)
        if target is not None and target.ip and mine:
            lines.append(f"{target.ip}\t{alias or name}")
    for entry in c.host.extra_hosts:
        host, _, ip = entry.partition(":")
        lines.append(f"{gateway_ip if ip == 'host-gateway' else ip}\t{host}")
    return ("\n".join(lines) + "\n").encode()


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(n for n in names if n))
