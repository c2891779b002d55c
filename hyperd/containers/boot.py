"""A container's run begins: its sandbox boots (or is re-adopted) and its process starts."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from typing import TYPE_CHECKING

from hyperd.agent.client import AgentError
from hyperd.agent.facade import Agent
from hyperd.agent.protocol import Mount
from hyperd.errors import Conflict, HyperError
from hyperd.network import PortBinding
from hyperd.sandbox import NicRequest, Sandbox, SandboxSpec
from hyperd.vm.designer import DiskSpec, ShareSpec, share_mount_options

from .create import RW_DISK, writable_disk_blank
from .io import INIT
from .model import Attachment, Container, Published
from .monitor import Run
from .process import host_dns
from .spec import PortRequest

if TYPE_CHECKING:
    from .service import ContainerService

log = logging.getLogger(__name__)
# Host memory a VM costs beyond its guest RAM (QEMU itself, TCG translation cache).
VM_OVERHEAD = 48 << 20
IMAGE_SERIAL, RW_SERIAL = "image", "rw"


class StartFailed(HyperError):
    """The container's process could not be started; exit_code is Docker's (126/127/128)."""

    status = 400

    def __init__(self, message: str, exit_code: int = 128):
        super().__init__(message)
        self.exit_code = exit_code


class InsufficientResources(HyperError):
    """The host cannot hold what a container asks for."""


def _mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def check_resources(c: Container) -> None:
    """Refuse a start the host has no memory for."""
    need, avail = c.memory + VM_OVERHEAD, _mem_available()
    if need > avail:
        raise InsufficientResources(
            f"cannot start {c.name}: it needs {need >> 20} MiB of host memory "
            f"but only {avail >> 20} MiB are available"
        )


def sandbox_spec(
    svc: ContainerService, c: Container, disks: list[DiskSpec], shares: list[ShareSpec]
) -> SandboxSpec:
    """The sandbox c runs in: its VM's size, disks, shares, network and DNS."""
    return SandboxSpec(
        id=c.sandbox,
        owner=c.id,
        hostname=c.config.hostname,
        cpus=c.cpus,
        memory=c.memory,
        disks=disks,
        shares=shares,
        networks=[nic_request(att.network_id or name, att) for name, att in nets(c)],
        mac=c.config.mac_address,
        port_requests=[
            PortBinding(r.proto, r.host_ip or "0.0.0.0", r.host_port, r.port)
            for r in _port_requests(c)
        ],
        dns=nameservers(svc, c),
        dns_search=c.host.dns_search,
        console_log=str(svc.console_path(c)),
        metadata={"container": c.id},
    )


def nameservers(svc: ContainerService, c: Container) -> list[str]:
    """c's resolv.conf servers: the embedded DNS on the gateway of its first user-defined
    network (its ``--dns`` become upstreams there), else its ``--dns`` or the host's."""
    gateway = svc.dns.gateway(c)
    return [gateway] if gateway else (c.host.dns or host_dns())


def nets(c: Container) -> list[tuple[str, Attachment]]:
    """c's networks in NIC order: NetworkMode's first (the default route, published ports),
    then the others as they were joined."""
    mode = c.host.network_mode

    def primary(item: tuple[str, Attachment]) -> bool:
        name, att = item
        return mode in (name, att.network_id) or (mode == "default" and name == "bridge")

    return sorted(c.networks.items(), key=lambda item: not primary(item))


def nic_request(network: str, att: Attachment) -> NicRequest:
    """The NIC an attachment asks for: its network, and the address and MAC chosen."""
    return NicRequest(network, att.ipv4_address, att.mac_address, tuple(att.link_local_ips))


def _port_requests(c: Container) -> list[PortRequest]:
    out = list(c.host.port_bindings)
    if c.host.publish_all:
        bound = {(r.port, r.proto) for r in out}
        for key in c.config.exposed_ports:
            port, _, proto = key.partition("/")
            if (int(port), proto or "tcp") not in bound:
                out.append(PortRequest(int(port), proto or "tcp"))
    return out


def devices(
    svc: ContainerService, c: Container
) -> tuple[list[Mount], list[DiskSpec], list[ShareSpec]]:
    """NEWCONTAINER's mounts and the VM's disks and 9p shares they need: the image (lower),
    the writable layer (upper), then volumes (disks), binds (shares) and tmpfs, in order."""
    rw = svc.dir(c) / RW_DISK
    disks = [
        DiskSpec(str(svc.images.rootfs_path(c.image_id)), IMAGE_SERIAL, True, shared=True),
        DiskSpec(str(rw), RW_SERIAL, blank=writable_disk_blank(rw)),
    ]
    out = [
        Mount(
            type="block",
            source=IMAGE_SERIAL,
            target="/",
            fstype=svc.images.rootfs_fstype,
            readonly=True,
            layer="lower",
        ),
        Mount(type="block", source=RW_SERIAL, target="/", fstype="ext4", layer="upper"),
    ]
    shares = []
    for i, m in enumerate(c.mounts):
        if m.type == "volume":
            serial = f"vol{i}"
            vol = svc.volumes.get(m.source)
            disks.append(DiskSpec(str(svc.volumes.disk(m.source)), serial, m.readonly))
            fill = not vol.used and not m.no_copy
            out.append(
                Mount(
                    type="block",
                    source=serial,
                    target=m.target,
                    fstype="ext4",
                    # a read-only disk cannot replay a journal left by a crashed VM
                    options="norecovery" if m.readonly else "",
                    readonly=m.readonly,
                    populate=fill and not m.readonly,
                )
            )
        elif m.type == "bind":
            share = ShareSpec(m.source, f"bind{i}", m.readonly)
            shares.append(share)
            options = share_mount_options(share)
            out.append(
                Mount(
                    type="9p",
                    source=share.tag,
                    target=m.target,
                    fstype="9p",
                    options=options,
                    readonly=m.readonly,
                )
            )
        else:
            opts = _tmpfs_options(m)
            out.append(_tmpfs(m.target, opts, m.readonly))
    for target, options in c.host.tmpfs.items():
        out.append(_tmpfs(target, options))
    return out, disks, shares


def with_serials(mounts: list[Mount], serials: dict[str, str]) -> list[Mount]:
    """The mounts with each disk named by the serial it got in the sandbox (a pool VM may
    have given a disk another serial than the one asked for: ``Sandbox.serials``)."""
    return [
        dataclasses.replace(m, source=serials.get(m.source, m.source)) if m.type == "block" else m
        for m in mounts
    ]


def _tmpfs(target: str, options: str, readonly: bool = False) -> Mount:
    return Mount(
        type="tmpfs", source="", target=target, fstype="tmpfs", options=options, readonly=readonly
    )


def _tmpfs_options(m) -> str:
    opts = [f"size={m.tmpfs_size}"] if m.tmpfs_size else []
    if m.tmpfs_mode:
        opts.append(f"mode={m.tmpfs_mode:o}")
    return ",".join(opts)


def check_volumes(svc: ContainerService, c: Container) -> None:
    """An ext4 volume is mounted read-write by at most one running VM (a second kernel
    mounting it would corrupt it); read-only by any number while nobody writes."""
    for m in c.mounts:
        if m.type != "volume":
            continue
        for other in svc.store:
            if other.id == c.id or svc.monitor.run(other.id) is None:
                continue
            for om in other.mounts:
                if (
                    om.type == "volume"
                    and om.source == m.source
                    and not (m.readonly and om.readonly)
                ):
                    raise Conflict(
                        f"volume {m.source} is in use by running container {other.name}: "
                        "an ext4 volume can be mounted read-write by one VM at a time"
                    )


def make_bind_sources(c: Container) -> None:
    """``-v /host:/path`` creates a missing host directory, as Docker does."""
    for m in c.mounts:
        if m.type == "bind" and m.create_source and not os.path.exists(m.source):
            os.makedirs(m.source, exist_ok=True)


def _preparer(svc: ContainerService, c: Container, opened: dict):
    """The hook run before the agent connects: c's main process is registered (in
    ``opened["io"]``) and the VM's health goes to the monitor."""

    def prepare(agent: Agent) -> None:
        opened["io"] = agent.open_process(c.id, INIT, c.stdio_seq, c.stderr_seq)
        agent.client.on_health = lambda reason: svc.monitor.vm_health(c, reason)

    return prepare


async def boot(svc: ContainerService, c: Container) -> Run:
    """Boot c's sandbox and start its main process; the run is not watched yet."""
    check_resources(c)
    check_volumes(svc, c)
    await asyncio.to_thread(make_bind_sources, c)
    mounts, disks, shares = await asyncio.to_thread(devices, svc, c)
    c.stdio_seq = svc.new_seq()
    c.stderr_seq = 0 if c.config.tty else svc.new_seq()
    opened = {}
    prepare = _preparer(svc, c, opened)

    sb = await svc.sandboxes.create(sandbox_spec(svc, c, disks, shares), prepare)
    c.sandbox = sb.id  # a pool VM keeps its own name
    return await _run_in(svc, c, sb, mounts, opened["io"])


async def rerun(svc: ContainerService, c: Container, sb: Sandbox) -> Run:
    """Start c again in the sandbox its last run left running (a restart): the container is
    taken down and made again in the same VM, so no VM boots."""
    mounts = (await asyncio.to_thread(devices, svc, c))[0]
    try:
        await sb.agent.remove_container(c.id)
    except AgentError as exc:
        await svc.sandboxes.release(sb, graceful=False)
        raise StartFailed(_start_message(exc)) from exc
    c.stdio_seq = svc.new_seq()
    c.stderr_seq = 0 if c.config.tty else svc.new_seq()
    io = sb.agent.open_process(c.id, INIT, c.stdio_seq, c.stderr_seq)
    return await _run_in(svc, c, sb, mounts, io)


async def _run_in(svc: ContainerService, c: Container, sb: Sandbox, mounts, io) -> Run:
    """Create c in its booted sandbox and start its main process."""
    pump = svc.io(c).pump(io)
    mounts = with_serials(mounts, sb.serials)
    try:
        _record_network(c, sb)
        proc = svc.main_process(c)
        await sb.agent.create_container(
            c.id, mounts, proc, c.host.readonly_rootfs, privileged=c.host.privileged
        )
        if not c.config.open_stdin and not c.config.tty:
            await sb.agent.close_stdin(c.stdio_seq)
    except BaseException as exc:
        pump.cancel()
        await svc.sandboxes.release(sb, graceful=False)
        clear_network(c)
        if isinstance(exc, AgentError):
            code = exc.process_exit_code or 128
            raise StartFailed(_start_message(exc), exit_code=code) from exc
        raise
    sb.containers.add(c.id)
    for m in c.mounts:
        if m.type == "volume":
            await asyncio.to_thread(svc.volumes.mark_used, m.source)
    return Run(sb, io, pump)


def _start_message(exc: AgentError) -> str:
    return f"failed to start container: {exc.message}"


def _record_network(c: Container, sb) -> None:
    for ep in sb.endpoints:
        att = c.networks.get(ep.name)
        if att is not None:
            record_endpoint(att, ep)
    c.published = [
        Published(b.proto, b.host_ip, b.host_port, b.container_port) for b in sb.published
    ]


def record_endpoint(att: Attachment, ep) -> None:
    """What the container's attachment shows of its endpoint on a network."""
    att.network_id, att.ip, att.prefix, att.gateway, att.mac = (
        ep.network,
        ep.ip,
        ep.prefix,
        ep.gateway,
        ep.mac,
    )


def clear_network(c: Container) -> None:
    """Forget the addresses and ports of a run that ended (the networks stay joined)."""
    for att in c.networks.values():
        att.ip, att.prefix, att.gateway, att.mac = "", 0, "", ""
    c.published = []


async def readopt(svc: ContainerService, c: Container) -> None:
    """After a daemon restart: follow c's VM again, or record that it ended meanwhile."""
    if c.state.status == "restarting":
        svc.monitor.schedule_restart(c)
        return
    _, disks, shares = await asyncio.to_thread(devices, svc, c)
    opened = {}
    prepare = _preparer(svc, c, opened)

    spec = sandbox_spec(svc, c, disks, shares)
    try:
        sb = await svc.sandboxes.adopt(spec, prepare)
    except AgentError as exc:
        log.error("cannot re-attach to %s: %s", c.sandbox, exc.message)
        await svc.sandboxes.destroy_vm(c.sandbox)
        return await _ended_meanwhile(svc, c, "agent unreachable after hyperd restart")
    if sb is None:
        return await _ended_meanwhile(svc, c, "vm ended while hyperd was not running")
    sb.containers.add(c.id)
    svc.monitor.watch(c, Run(sb, opened["io"], svc.io(c).pump(opened["io"])))
    log.info("re-adopted container %s in VM %s", c.id[:12], c.sandbox)


async def _ended_meanwhile(svc: ContainerService, c: Container, reason: str) -> None:
    c.state.set_stopped(137, reason)
    clear_network(c)
    await svc.store.save(c)


async def reconcile_network(svc: ContainerService) -> None:
    """Drop taps, addresses and ports of containers that do not run; restore the proxies
    of those that do (they died with the previous daemon)."""
    network = svc.sandboxes.network
    if network is None:
        return
    live = list(svc.monitor.runs())
    await asyncio.to_thread(network.reconcile, live)
    for c in svc.store:
        if c.id not in live and (c.ip or c.published):
            clear_network(c)
            await svc.store.save(c)
