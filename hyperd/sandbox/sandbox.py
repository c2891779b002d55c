"""One sandbox: a VM (Machine), its network endpoints and published ports, and its agent.

The guest is watched: a PING every ``timeout / 2`` seconds (while it is not paused) finds
a guest that stopped answering even when nobody asks it anything; the agent client then
reports it unresponsive (``on_health``) until it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hyperd.agent import protocol as p
from hyperd.agent.client import DEFAULT_TIMEOUT, AgentError
from hyperd.agent.facade import Agent
from hyperd.network import Endpoint, PortBinding, SpareNic
from hyperd.vm.designer import DiskSpec, ShareSpec
from hyperd.vm.machine import Machine

from .disks import Held

Prepare = Callable[[Agent], None]


async def until_nic(call: Callable[[], Awaitable[None]], wait: float) -> None:
    """``call()`` (a SETUPINTERFACE by MAC), again while the guest has no NIC of that MAC,
    for at most ``wait`` seconds: a hot-plugged NIC shows up a little after libvirt
    answers (the guest probes it after the ACPI event)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            return await call()
        except AgentError as exc:
            if "no interface with MAC" not in exc.message or loop.time() >= deadline:
                raise
        await asyncio.sleep(0.1)


@dataclass(frozen=True)
class NicRequest:
    """One network a sandbox joins (one NIC in its VM)."""

    network: str  # network ID or name
    ip: str = ""  # the address asked for ('' = any free one)
    mac: str = ""  # the MAC asked for ('' = one derived from the owner)
    link_local: tuple[str, ...] = ()  # more addresses on the NIC (a /16 each)


@dataclass
class SandboxSpec:
    """What a sandbox is made of."""

    id: str  # the VM's domain name
    owner: str  # who holds its network resources (the container ID today)
    hostname: str
    cpus: int
    memory: int  # bytes
    disks: list[DiskSpec] = field(default_factory=list)
    shares: list[ShareSpec] = field(default_factory=list)
    networks: list[NicRequest] = field(default_factory=list)  # none: loopback only
    mac: str = ""  # the first NIC's MAC address when the user chose one (Config.MacAddress)
    port_requests: list[PortBinding] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    console_log: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


class Sandbox:
    """A running VM with its agent connection and network endpoint.

    ``agent_timeout`` bounds every agent call that gives no bound of its own.
    """

    def __init__(self, spec: SandboxSpec, machine: Machine, agent_timeout: float = DEFAULT_TIMEOUT):
        self.spec = spec
        self.machine = machine
        self.agent_timeout = agent_timeout
        self.endpoints: list[Endpoint] = []  # in the order of the guest's NICs (eth0 first)
        self.published: list[PortBinding] = []
        self.agent: Agent | None = None
        self.containers: set[str] = set()
        self.paused = False
        self.spare: SpareNic | None = None  # a pool VM's NIC, on no network yet
        self.held: list[Held] = []  # a pool VM's disks, for no sandbox yet
        # requested disk serial -> the serial the disk has in the VM, when not the same
        # (a pool VM may have had a disk on that serial already: hyperd.sandbox.disks)
        self.serials: dict[str, str] = {}
        self.link_local: dict[str, tuple[str, ...]] = {}  # guest device -> extra addresses
        self._watchdog: asyncio.Task | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def endpoint(self) -> Endpoint | None:
        """The endpoint on the first network (published ports go there), or None."""
        return self.endpoints[0] if self.endpoints else None

    @property
    def unresponsive(self) -> str:
        """Why the guest is not answering ("" while it does)."""
        return self.agent.client.unresponsive if self.agent is not None else ""

    @property
    def fenced(self) -> str:
        """Why the guest was cut off for breaking the protocol ("" if it was not)."""
        return self.agent.client.fenced if self.agent is not None else ""

    def _wrap(self, prepare: Prepare | None):
        def hook(client) -> None:
            client.default_timeout = self.agent_timeout
            self.agent = Agent(client)
            if prepare is not None:
                prepare(self.agent)

        return hook

    def _watch(self) -> None:
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._probe())

    async def _probe(self) -> None:
        """PING now and then, so a guest that stopped answering is noticed."""
        while self.connected:
            await asyncio.sleep(self.agent_timeout / 2)
            if not self.paused:
                await self._ping()

    async def _ping(self) -> None:
        if self.connected:
            with contextlib.suppress(AgentError):
                await self.agent.client.call(p.Code.PING, timeout=self.agent_timeout, probe=True)

    def _unwatch(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def boot(self, prepare: Prepare | None = None, timeout: float = 120) -> None:
        """Start the VM, wait for its agent, name the pod and set up its network."""
        await self.boot_vm(prepare, timeout)
        await self.setup_pod()

    async def boot_vm(
        self, prepare: Prepare | None = None, timeout: float = 120, state: str = ""
    ) -> None:
        """Start the VM (booted, or restored from a template's ``state``) and wait for its
        agent (READY); the pod is not set up yet."""
        if state:
            await self.machine.restore(state, timeout=timeout, prepare=self._wrap(prepare))
        else:
            await self.machine.boot(timeout=timeout, prepare=self._wrap(prepare))
        self._watch()

    async def setup_pod(self, nic_wait: float = 0) -> None:
        """Name the pod (hostname, DNS) and address its NICs; ``nic_wait``: seconds a
        hot-plugged NIC may take to show up."""
        await self.agent.start_pod(self.spec.hostname, self.spec.dns, self.spec.dns_search)
        for ep in self.endpoints:
            await self.setup_nic(ep, wait=nic_wait)
        await self.set_default_route()

    def hand_over(self, spec: SandboxSpec, prepare: Prepare | None = None) -> None:
        """A booted, unassigned VM (from the pool) becomes the sandbox ``spec`` describes;
        ``prepare`` runs as it would have before the agent connected."""
        self.spec = spec
        if prepare is not None:
            prepare(self.agent)

    async def setup_nic(self, ep: Endpoint, wait: float = 0) -> None:
        """Name the guest's NIC with the endpoint's MAC (eth0, eth1...) and address it;
        ``wait``: seconds to give a hot-plugged NIC to appear (the guest probes it after
        the ACPI event, a little after libvirt answers)."""
        addresses = [(ep.ip, ep.prefix)]
        addresses += [(ip, 16) for ip in self.link_local.get(ep.device, ())]
        await until_nic(
            lambda: self.agent.setup_interface(ep.mac, addresses, new_name=ep.device), wait
        )

    async def set_default_route(self) -> None:
        """The default route via the first network that is not internal (none if all are)."""
        ep = next((e for e in self.endpoints if not e.internal), None)
        if ep is not None:
            await self.agent.setup_routes(
                [{"dest": "default", "gateway": ep.gateway, "device": ep.device}]
            )

    async def adopt(self, prepare: Prepare | None = None, timeout: float = 10) -> None:
        """Re-connect to the agent of a VM that kept running while hyperd was away."""
        await self.machine.attach(timeout=timeout, prepare=self._wrap(prepare))
        self._watch()

    @property
    def connected(self) -> bool:
        """True while the agent answers (the VM runs)."""
        return self.agent is not None and self.agent.connected

    async def power_off(self, timeout: float = 5) -> None:
        """Sync and power off through the agent; destroy the VM if that does not work
        (at once when the guest does not answer)."""
        self._unwatch()
        if self.unresponsive or self.fenced:
            await self.machine.destroy()
        else:
            await self.machine.power_off(timeout=timeout)

    async def destroy(self) -> None:
        """Hard-stop the VM."""
        self._unwatch()
        await self.machine.destroy()

    async def pause(self) -> None:
        """Suspend the VM (``docker pause``)."""
        self.paused = True
        try:
            await self.machine.pause()
        except BaseException:
            self.paused = False
            raise

    async def resume(self) -> None:
        """Resume a suspended VM."""
        await self.machine.resume()
        self.paused = False
        if self.unresponsive:  # a call made while it was paused went unanswered
            await self._ping()

    async def write_file(self, cid: str, path: str, data: bytes) -> None:
        """Write a file into a container, ignoring a VM that is going away."""
        if self.connected:
            with contextlib.suppress(AgentError, asyncio.TimeoutError):
                await asyncio.wait_for(self.agent.write_file(cid, path, data), 10)
