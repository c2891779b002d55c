"""One sandbox: a VM (Machine), its network endpoint and published ports, and its agent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from hyperd.agent.client import AgentError
from hyperd.agent.facade import Agent
from hyperd.network import Endpoint, PortBinding
from hyperd.vm.designer import DiskSpec, ShareSpec
from hyperd.vm.machine import Machine

Prepare = Callable[[Agent], None]


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
    network: bool = True  # False: loopback only
    mac: str = ""  # the NIC's MAC address when the user chose one (Config.MacAddress)
    port_requests: list[PortBinding] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    console_log: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


class Sandbox:
    """A running VM with its agent connection and network endpoint."""

    def __init__(self, spec: SandboxSpec, machine: Machine):
        self.spec = spec
        self.machine = machine
        self.endpoint: Endpoint | None = None
        self.published: list[PortBinding] = []
        self.agent: Agent | None = None
        self.containers: set[str] = set()

    @property
    def id(self) -> str:
        return self.spec.id

    def _wrap(self, prepare: Prepare | None):
        def hook(client) -> None:
            self.agent = Agent(client)
            if prepare is not None:
                prepare(self.agent)

        return hook

    async def boot(self, prepare: Prepare | None = None, timeout: float = 120) -> None:
        """Start the VM, wait for its agent, name the pod and set up its network."""
        await self.machine.boot(timeout=timeout, prepare=self._wrap(prepare))
        await self.agent.start_pod(self.spec.hostname, self.spec.dns, self.spec.dns_search)
        if self.endpoint is not None:
            ep = self.endpoint
            await self.agent.setup_interface(ep.mac, [(ep.ip, ep.prefix)], new_name="eth0")
            await self.agent.setup_routes(
                [{"dest": "default", "gateway": ep.gateway, "device": "eth0"}]
            )

    async def adopt(self, prepare: Prepare | None = None, timeout: float = 10) -> None:
        """Re-connect to the agent of a VM that kept running while hyperd was away."""
        await self.machine.attach(timeout=timeout, prepare=self._wrap(prepare))

    @property
    def connected(self) -> bool:
        """True while the agent answers (the VM runs)."""
        return self.agent is not None and self.agent.connected

    async def power_off(self, timeout: float = 5) -> None:
        """Sync and power off through the agent; destroy the VM if that does not work."""
        await self.machine.power_off(timeout=timeout)

    async def destroy(self) -> None:
        """Hard-stop the VM."""
        await self.machine.destroy()

    async def pause(self) -> None:
        """Suspend the VM (``docker pause``)."""
        await self.machine.pause()

    async def resume(self) -> None:
        """Resume a suspended VM."""
        await self.machine.resume()

    async def write_file(self, cid: str, path: str, data: bytes) -> None:
        """Write a file into a container, ignoring a VM that is going away."""
        if self.connected:
            with contextlib.suppress(AgentError, asyncio.TimeoutError):
                await asyncio.wait_for(self.agent.write_file(cid, path, data), 10)
