"""A pool VM's warm-up under TCG: one throwaway container start before a container takes it.

Under TCG, QEMU translates guest code into host code the first time the guest runs it,
and every VM (every QEMU process) does so for itself. A container's start in a fresh VM
spends most of its guest time translating, not running: the kernel's paths for mounting
the root (erofs, ext4, overlayfs) and the kernel filesystems, for spawning into new
namespaces with capabilities and a seccomp filter, for exec, and the agent's own code.
A pool VM waits for a container anyway, so before it is handed out it starts one
container the way a container starts, and removes it:

- its root is the disks the VM holds, as lower (read-only) layers: the image's root
  disk and the blank writable disk (a read-only mount of the fresh, journal-less ext4
  writes nothing, so it stays blank and is handed over); a tmpfs takes the writes;
- its process gets the default capabilities and seccomp filter and execs the agent's own
  binary as /proc/self/exe, which exits at once (``EXIT_ARG``), and is reaped;
- the VM's NIC is addressed (an address of TEST-NET-1) and routed, then cleared and set
  down (``DELETEINTERFACE``, which also makes the agent forget the address for the next
  container's /etc/hosts); it is on no bridge, so nothing leaves it.

Nothing of it stays in the guest but what the kernel caches. With KVM there is nothing
to translate and a pool VM is handed out as it booted.
"""

from __future__ import annotations

import asyncio
import logging

from hyperd.agent import protocol as p
from hyperd.agent.client import AgentError, AgentTimeout

from .disks import Held
from .sandbox import Sandbox, until_nic

log = logging.getLogger(__name__)
CONTAINER = "hyper-warm-up"
EXIT_WAIT = 30.0  # seconds for the warm-up process to exit (TCG under load)
NIC_ADDRESS = ("192.0.2.2", 24)  # TEST-NET-1 (RFC 5737): routed nowhere
NIC_GATEWAY = "192.0.2.1"
NIC_WAIT = 30.0  # seconds a clone's hot-plugged NIC may take to show up (TCG)


def root_mounts(held: list[Held], root_fstype: str) -> list[p.Mount]:
    """The warm-up container's root: every disk the pool VM holds, read-only (none: no
    root, and no container)."""
    return [
        p.Mount(
            "block",
            h.spec.serial,
            "/",
            "ext4" if h.spec.blank else root_fstype,
            readonly=True,
            layer="lower",
        )
        for h in held
    ]


async def warm_up(sb: Sandbox, root_fstype: str) -> None:
    """Start and remove one container in the pool VM, and address and clear its NIC.

    A container the agent refuses is logged (nothing of it is left, as after any failed
    NEWCONTAINER); an agent that does not answer in time, or fails to remove it or to
    clear the NIC, raises: the VM is not in a state to hand out."""
    mounts = root_mounts(sb.held, root_fstype)
    if mounts:
        await _container(sb, mounts)
    if sb.spare is not None:
        await _nic(sb, sb.spare.mac)


async def _container(sb: Sandbox, mounts: list[p.Mount]) -> None:
    agent = sb.agent
    proc = p.Process(
        id="init",
        args=["/proc/self/exe", p.EXIT_ARG],
        stdio=agent.new_seq(),
        stderr=agent.new_seq(),
    )
    io = agent.open_process(CONTAINER, proc.id, proc.stdio, proc.stderr)
    try:
        try:
            await agent.create_container(CONTAINER, mounts, proc)
        except AgentTimeout:
            raise  # it may still be made: the VM is not known to be clean
        except AgentError as exc:
            log.warning("pool VM %s: warm-up container failed: %s", sb.id, exc.message)
            return
        try:
            status = await asyncio.wait_for(asyncio.shield(io.exited), EXIT_WAIT)
            if status != 0:
                log.warning("pool VM %s: warm-up process exited %d", sb.id, status)
        except TimeoutError:
            log.warning("pool VM %s: warm-up process still running after %gs", sb.id, EXIT_WAIT)
        await agent.remove_container(CONTAINER)
    finally:
        agent.forget_process(io)


async def _nic(sb: Sandbox, mac: str) -> None:
    agent = sb.agent
    await until_nic(lambda: agent.setup_interface(mac, [NIC_ADDRESS], new_name="eth0"), NIC_WAIT)
    await agent.setup_routes([{"dest": "default", "gateway": NIC_GATEWAY, "device": "eth0"}])
    await agent.delete_interface(mac)
