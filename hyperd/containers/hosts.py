"""What a container resolves by name: itself, the containers it shares a network with (by
name, aliases on that network, short ID and hostname, as Docker's ``DNSNames``), its links
and, in /etc/hosts only, its extra hosts (``--add-host``).

Names resolve per network, as Docker's embedded DNS does: a container on networks A and B
sees A's containers by their A addresses and aliases and B's by theirs, and nothing of a
network it is not on. One function (``known_names``) holds these rules; /etc/hosts (rewritten
by ``refresh`` on every start, stop, rename, connect and disconnect) and the embedded DNS
server of user-defined networks (hyperd/network/dns.py, asked at every query) both read it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .model import Attachment, Container

if TYPE_CHECKING:
    from .service import ContainerService


@dataclass(frozen=True)
class NameEntry:
    """Names for one address, learnt on one network (its name)."""

    ip: str
    names: tuple[str, ...]
    network: str


def dns_names(c: Container, att: Attachment) -> list[str]:
    """The names c answers to on one network, in Docker's order: its name, its aliases
    there, its short ID and its hostname."""
    return list(_uniq(c.name, *att.aliases, c.id[:12], c.config.hostname))


def known_names(c: Container, peers: Iterable[Container]) -> list[NameEntry]:
    """Every (address, names) c resolves: itself on each of its networks (hostname first),
    the peers on each network it shares with them, then its links (the link's alias, or the
    target's name, to the target's address on the link's network or the first shared)."""
    mine = {n: a for n, a in c.networks.items() if a.ip}
    out = [NameEntry(a.ip, _uniq(c.config.hostname, *dns_names(c, a)), n) for n, a in mine.items()]
    others = [o for o in peers if o.id != c.id]
    for other in others:
        for net, att in other.networks.items():
            if net in mine and att.ip:
                out.append(NameEntry(att.ip, _uniq(*dns_names(other, att)), net))
    by_name = {o.name: o for o in others}
    links = [(None, link) for link in c.host.links]
    links += [(net, link) for net, att in mine.items() for link in att.links]
    for net, link in links:
        name, _, alias = link.partition(":")
        found = _shared(by_name.get(name), mine, net)
        if found:
            out.append(NameEntry(found[1], (alias or name,), found[0]))
    return out


def hosts_file(c: Container, peers: Iterable[Container], gateway_ip: str = "") -> bytes:
    """The file's bytes; ``peers`` are the running containers (c may be among them)."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    if not any(a.ip for a in c.networks.values()):
        lines.append(f"127.0.1.1\t{c.config.hostname}")
    lines += [f"{e.ip}\t{' '.join(e.names)}" for e in known_names(c, peers)]
    for entry in c.host.extra_hosts:
        host, _, ip = entry.partition(":")
        lines.append(f"{gateway_ip if ip == 'host-gateway' else ip}\t{host}")
    return ("\n".join(lines) + "\n").encode()


async def refresh(
    svc: ContainerService, first: Container | None = None, wait: bool = False
) -> None:
    """Rewrite /etc/hosts in every running container (names come and go).

    Only ``first``'s own file (a container just started) is waited for, or every file
    with ``wait`` (network connect and disconnect answer once names follow); the others
    are written in the background, so a guest that does not answer delays nobody else.
    """
    running = [c for c in svc.store if svc.monitor.run(c.id) is not None]
    waited = []
    for c in running:
        run = svc.monitor.run(c.id)
        if not c.networks or run is None:
            continue
        write = run.sandbox.write_file(c.id, "/etc/hosts", hosts_file(c, running, _gateway(c)))
        if wait or (first is not None and c.id == first.id):
            waited.append(write)
        else:
            svc.spawn(write)
    await asyncio.gather(*waited)


def dns_table(c: Container, peers: Iterable[Container], network: str = "") -> dict[str, list[str]]:
    """Name (lower case, no trailing dot) -> c's addresses for it, those learnt on
    ``network`` (where the query came from) first."""
    entries = known_names(c, peers)
    entries.sort(key=lambda e: e.network != network)  # stable: the rules' order otherwise
    table: dict[str, list[str]] = {}
    for e in entries:
        for name in e.names:
            ips = table.setdefault(name.lower().rstrip("."), [])
            if e.ip not in ips:
                ips.append(e.ip)
    return table


def _shared(target: Container | None, mine: dict, net: str | None) -> tuple[str, str] | None:
    """(network, the target's address there) on ``net`` or on the first network shared."""
    if target is None:
        return None
    for name, att in target.networks.items():
        if att.ip and name in mine and (net is None or name == net):
            return name, att.ip
    return None


def _gateway(c: Container) -> str:
    return next((a.gateway for a in c.networks.values() if a.gateway), "")


def _uniq(*names: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for n in names if n))
