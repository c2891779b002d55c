"""The embedded DNS server's view of the containers: who asked (by network and source
address), what names it resolves (hosts.py's rules) and where its other names go."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperd.network.dns import Client, DnsServer

from .boot import nets
from .hosts import dns_table
from .model import Container
from .process import host_dns

if TYPE_CHECKING:
    from .service import ContainerService


class Resolver:
    """The daemon's DNS server on user-defined networks, fed by the running containers
    (inert without networking)."""

    def __init__(self, svc: ContainerService):
        self.svc = svc
        self.server = DnsServer(self.client)

    @property
    def _network(self):
        return self.svc.sandboxes.network

    def _running(self) -> list[Container]:
        return [c for c in self.svc.store if self.svc.monitor.run(c.id) is not None]

    def client(self, network_id: str, ip: str) -> Client | None:
        """The container at ``ip`` on the network: its names and upstreams. Known by its
        endpoint's address, set before its process starts (the daemon watches the run a
        moment later, and an entrypoint may ask at once); cleared when the run ends."""
        running = self._running()
        for c in self.svc.store:
            for name, att in c.networks.items():
                if att.network_id == network_id and att.ip == ip:
                    return Client(dns_table(c, running, name), self._upstream(c))
        return None

    def _upstream(self, c: Container) -> list[str]:
        """c's --dns, else the host's servers; none when every network of c is internal
        (its names stay inside, as Docker's resolver on internal networks)."""
        recs = [self._network.records.find(a.network_id) for a in c.networks.values()]
        if recs and all(r is not None and r.internal for r in recs):
            return []
        return c.host.dns or host_dns(guest=False)

    def gateway(self, c: Container) -> str:
        """Where c's resolv.conf points: the gateway of its first user-defined network
        (in NIC order), or "" when it is on none."""
        if self._network is None:
            return ""
        for name, att in nets(c):
            rec = self._network.records.find(att.network_id or name)
            if rec is not None and _served(rec):
                return rec.gateway
        return ""

    async def sync(self) -> None:
        """Serve every user-defined network that has its bridge, and no other."""
        if self._network is None:
            return
        recs = self._network.list()
        await self.server.sync({r.id: r.gateway for r in recs if _served(r)})

    async def close(self) -> None:
        """Stop serving (daemon shutdown; the next daemon serves again)."""
        await self.server.close()


def _served(rec) -> bool:
    """Does the network have the embedded DNS: user-defined, with its bridge up?"""
    return rec.has_bridge and not rec.builtin
