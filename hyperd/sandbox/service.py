"""Making, finding and releasing sandboxes: VM specs from policy, network wiring, VM ends."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

from hyperd.config import Config
from hyperd.network import Network
from hyperd.vm import accel, designer
from hyperd.vm.machine import DOMAIN_PREFIX, GuestAssets, Machine
from hyperd.vm.virt import Hypervisor

from .sandbox import Prepare, Sandbox, SandboxSpec

log = logging.getLogger(__name__)


class Sandboxes:
    """The daemon's sandboxes."""

    def __init__(self, config: Config, hv: Hypervisor, network: Network | None):
        self.config = config
        self.hv = hv
        self.network = network
        self.accel = accel.choose(config.accel)
        self.assets = GuestAssets.locate(config.kernel or None, config.initrd or None)
        self._live: dict[str, Sandbox] = {}
        self._stop_reasons: dict[str, str] = {}

    def get(self, sid: str) -> Sandbox | None:
        """A live sandbox by ID."""
        return self._live.get(sid)

    def _machine(self, spec: SandboxSpec, nics: list[designer.NicSpec]) -> Machine:
        run = Path(self.config.run_dir) / "vms" / spec.id
        vm = designer.VMSpec(
            name=spec.id,
            uuid=str(uuid.uuid5(uuid.NAMESPACE_OID, spec.id)),
            kernel=self.assets.kernel,
            initrd=self.assets.initrd,
            control_socket=str(run / "control.sock"),
            stream_socket=str(run / "stream.sock"),
            console_log=spec.console_log,
            vcpus=spec.cpus,
            memory_mib=spec.memory >> 20,
            disks=spec.disks,
            shares=spec.shares,
            nics=nics,
            metadata={**spec.metadata, "root": self.config.root},
        )
        return Machine(self.hv, vm, accel.domain_type(self.accel), self.config.tb_cache_mib)

    async def create(self, spec: SandboxSpec, prepare: Prepare | None = None) -> Sandbox:
        """Reserve the network (a port clash fails before any VM boots), then boot."""
        sb = Sandbox(spec, self._machine(spec, []), self.config.agent_timeout)
        if spec.network and self.network is not None:
            await self._connect(sb)
        sb.machine = self._machine(spec, self._nics(sb))
        self._live[spec.id] = sb
        try:
            await sb.boot(prepare)
        except BaseException:
            await self.release(sb, graceful=False)
            raise
        return sb

    def _nics(self, sb: Sandbox) -> list[designer.NicSpec]:
        ep = sb.endpoint
        return [designer.NicSpec(ep.mac, tap=ep.tap)] if ep else []

    async def _connect(self, sb: Sandbox) -> None:
        owner = sb.spec.owner
        sb.endpoint = await asyncio.to_thread(self.network.attach, owner)
        try:
            sb.published = await asyncio.to_thread(
                self.network.publish, owner, sb.spec.port_requests
            )
        except BaseException:
            await asyncio.to_thread(self.network.detach, owner)
            sb.endpoint = None
            raise

    async def adopt(self, spec: SandboxSpec, prepare: Prepare | None = None) -> Sandbox | None:
        """The sandbox of a VM still running after a daemon restart; None if it is gone."""
        state = await asyncio.to_thread(self.hv.state, spec.id)
        if state not in ("running", "paused"):
            return None
        sb = Sandbox(spec, self._machine(spec, []), self.config.agent_timeout)
        if spec.network and self.network is not None:
            sb.endpoint = await asyncio.to_thread(self.network.endpoint, spec.owner)
            sb.published = await asyncio.to_thread(self.network.ports, spec.owner)
        if state == "paused":  # a paused guest cannot answer: wake it to re-attach
            await sb.resume()
        await sb.adopt(prepare)
        if state == "paused":
            await sb.pause()
        self._live[spec.id] = sb
        return sb

    async def unpublish(self, sb: Sandbox) -> None:
        """Free the sandbox's host ports at once (its VM may take a while to go)."""
        if self.network is not None and sb.published:
            await asyncio.to_thread(self.network.unpublish, sb.spec.owner)
        sb.published = []

    async def release(self, sb: Sandbox, graceful: bool = True) -> None:
        """Power the VM off (or destroy it) and free its network resources."""
        self._live.pop(sb.id, None)
        if graceful:
            await sb.power_off(timeout=5)
        else:
            await sb.destroy()
        if self.network is not None and sb.spec.network:
            await asyncio.to_thread(self.network.detach, sb.spec.owner)
        sb.endpoint, sb.published = None, []
        self._stop_reasons.pop(sb.id, None)

    # -- VM ends ---------------------------------------------------------------------------

    def vm_stopped(self, name: str, reason: str) -> None:
        """libvirt event: a domain stopped (remembered to explain the container's exit)."""
        if name in self._live:
            self._stop_reasons[name] = reason

    async def end_reason(self, sb: Sandbox) -> str:
        """Why the sandbox's VM ended under its containers."""
        for _ in range(20):  # the libvirt event may trail the agent's socket closing
            if sb.id in self._stop_reasons:
                break
            await asyncio.sleep(0.05)
        why = self._stop_reasons.pop(sb.id, "")
        if why == "destroyed":
            return "vm destroyed outside hyperd"
        return f"vm {why}" if why else "vm ended unexpectedly"

    # -- daemon start ----------------------------------------------------------------------

    async def running_vms(self) -> set[str]:
        """Names of this daemon's VMs that libvirt runs (other hyperds may share libvirt)."""
        out = set()
        for vm in await asyncio.to_thread(self.hv.names, DOMAIN_PREFIX):
            owner = await asyncio.to_thread(self.hv.metadata, vm, designer.METADATA_NS, "root")
            if owner == self.config.root:
                out.add(vm)
        return out

    async def destroy_vm(self, name: str) -> None:
        """Destroy a VM no sandbox accounts for."""
        await asyncio.to_thread(self.hv.destroy, name)
