"""``network connect`` and ``network disconnect`` of a container.

A created or stopped container only changes what it joins at its next start; a running one
gets a NIC hot-plugged (or unplugged) in its VM at once, and every container's /etc/hosts is
refreshed so names follow.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from hyperd.errors import Conflict, InvalidArgument
from hyperd.network import NONE, Forbidden, Network, NetworkRecord

from .boot import nic_request, record_endpoint
from .model import Attachment, Container
from .spec import EndpointSpec

if TYPE_CHECKING:
    from .service import ContainerService

TEARDOWN_WAIT = 15.0


def _network(svc: ContainerService) -> Network:
    if svc.sandboxes.network is None:
        raise InvalidArgument('hyperd runs without networking (bridge = ""): no networks')
    return svc.sandboxes.network


def _event(svc: ContainerService, action: str, rec: NetworkRecord, c: Container) -> None:
    svc.events.publish("network", action, rec.id, container=c.id, name=rec.name, type=rec.driver)


def _run_of(svc: ContainerService, c: Container):
    """The run to hot-plug into, None when the change waits for the next start."""
    run = svc.monitor.run(c.id)
    if run is not None and c.state.paused:
        raise Conflict(f"Container {c.id} is paused, unpause it before changing its networks")
    return run


async def connect(svc: ContainerService, ref: str, network: str, ep: EndpointSpec) -> None:
    """Join ``c`` to a network (see the module docstring)."""
    net = _network(svc)
    rec = net.get(network)
    c = svc.store.get(ref)
    if rec.name == NONE or c.host.network_mode == NONE:
        raise InvalidArgument(
            f"container {c.name} cannot join network {rec.name}: a container on network none "
            "has loopback only"
        )
    if ep.ipv4_address:
        net.check_address(rec.name, ep.ipv4_address)
    async with svc.lock(c.id):
        if rec.name in c.networks:
            raise Forbidden(f"endpoint with name {c.name} already exists in network {rec.name}")
        att = Attachment.from_spec(ep, rec.id)
        run = _run_of(svc, c)
        if run is not None:
            endpoint = await svc.sandboxes.connect(run.sandbox, nic_request(rec.id, att))
            record_endpoint(att, endpoint)
        c.networks[rec.name] = att
        await svc.store.save(c)
    _event(svc, "connect", rec, c)
    await svc.refresh_hosts(wait=True)


async def disconnect(svc: ContainerService, ref: str, network: str, force: bool = False) -> None:
    """Take ``c`` off a network (see the module docstring)."""
    net = _network(svc)
    c = svc.store.get(ref)
    rec = net.records.find(network)
    name = rec.name if rec is not None else network
    if name not in c.networks:
        if force and rec is None:
            return
        raise InvalidArgument(f"container {c.name} is not connected to network {network}")
    async with svc.lock(c.id):
        run = _run_of(svc, c)
        if run is not None and rec is not None:
            await svc.sandboxes.disconnect(run.sandbox, rec.id)
            if not run.sandbox.published:  # they went to that network's address
                c.published = []
        c.networks.pop(name, None)
        await svc.store.save(c)
    if rec is not None:
        _event(svc, "disconnect", rec, c)
    await svc.refresh_hosts(wait=True)


async def remove_network(svc: ContainerService, ref: str) -> NetworkRecord:
    """Remove a network once the endpoints of containers that stopped are gone (their VMs
    are torn down in the background, a second or two under TCG); 409 while one runs."""
    net = _network(svc)
    rec = net.get(ref)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TEARDOWN_WAIT
    while True:
        held = net.owners(rec.id)
        running = held & set(svc.monitor.runs())
        if running or held == running:
            break  # net.remove answers: 409 while one runs
        if loop.time() >= deadline:
            for owner in held - running:  # its VM is going away regardless
                await asyncio.to_thread(net.detach, owner, rec.id)
            break
        await asyncio.sleep(0.1)
    try:
        return await asyncio.to_thread(net.remove, rec.id)
    finally:
        await svc.dns.sync()
