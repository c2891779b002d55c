"""Making, finding and releasing sandboxes: VM specs from policy, network wiring (at boot
and hot-plugged), VM ends."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import uuid
from pathlib import Path

from hyperd.agent.client import AgentError
from hyperd.config import Config
from hyperd.errors import HyperError
from hyperd.network import Endpoint, Network, SpareNic
from hyperd.vm import accel, designer, users
from hyperd.vm.machine import DOMAIN_PREFIX, GuestAssets, Machine
from hyperd.vm.virt import Hypervisor, VirtError

from .disks import live_serials
from .pool import Pool, assets_key, parse_factory
from .pooled import POOL_PREFIX, PoolVMs, move_console
from .sandbox import NicRequest, Prepare, Sandbox, SandboxSpec
from .template import Template, template_key
from .template import sweep as sweep_template

log = logging.getLogger(__name__)
HOTPLUG_WAIT = 30.0  # seconds a hot-plugged NIC may take to show up in the guest (TCG)


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
        factory = parse_factory(config.factory)
        self.template = (
            Template(
                config.root,
                self._bare_spec,
                lambda spec: self._machine(spec, []),
                lambda: template_key(
                    (self.assets.kernel, self.assets.initrd),
                    config.cpus,
                    config.memory_bytes,
                    self.accel,
                ),
                config.agent_timeout,
            )
            if factory.template and self._template_possible()
            else None
        )
        warm = self.accel == "tcg"  # only TCG translates what a guest runs
        self.pool_vms = PoolVMs(config, self._machine, network, self.template, warm)
        self.pool = Pool(
            factory.cache,
            self.pool_vms.fill,
            self.pool_vms.discard,
            lambda: assets_key((self.assets.kernel, self.assets.initrd)),
            self.pool_vms.unfit,
        )

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
        hv_type = accel.domain_type(self.accel)
        return Machine(self.hv, vm, hv_type, self.config.tb_cache_mib, users.of(self.config))

    async def create(self, spec: SandboxSpec, prepare: Prepare | None = None) -> Sandbox:
        """A pool VM made into the sandbox when one fits, else a VM booted for it. The
        sandbox's ID is the VM's: ``spec.id`` for a booted one, the pool VM's own name."""
        pooled = None
        if self._fits_pool(spec):
            self.pool_vms.remember(spec.disks)  # before take(): its refill boots with them
            pooled = self.pool.take() or await self._clone()
        if pooled is not None:
            try:
                return await self._take_over(pooled, spec, prepare)
            except (AgentError, VirtError, OSError) as exc:
                why = getattr(exc, "message", exc)
                log.warning("pool VM %s failed (%s); booting one", pooled.id, why)
        return await self._boot(spec, prepare)

    async def _clone(self) -> Sandbox | None:
        """A new pool VM cloned from the template for a sandbox to take, or None (no
        template ready, or the clone failed: the sandbox boots)."""
        if self.template is None or not self.template.ready():
            return None
        try:
            return await self.pool_vms.boot()
        except (AgentError, VirtError, OSError) as exc:
            log.warning("clone of the template failed (%s); booting", getattr(exc, "message", exc))
            return None

    def _template_possible(self) -> bool:
        """Clones need VMs with users of their own (each one is let into the template's
        RAM file by an ACL, as into its disks)."""
        if users.of(self.config) is None:
            log.warning('factory "template" needs VM users (vm_uid_base, ACLs): VMs boot')
            return False
        return True

    def _bare_spec(self, vid: str) -> SandboxSpec:
        """A VM of the default size for no container (a template's)."""
        return SandboxSpec(
            id=vid,
            owner="",
            hostname="",
            cpus=self.config.cpus,
            memory=self.config.memory_bytes,
            console_log=str(Path(self.config.root) / "template" / "console.log"),
            metadata={"template": "1"},
        )

    async def _boot(self, spec: SandboxSpec, prepare: Prepare | None) -> Sandbox:
        """Reserve the network (a port clash fails before any VM boots), then boot."""
        sb = Sandbox(spec, self._machine(spec, []), self.config.agent_timeout)
        if spec.networks and self.network is not None:
            await self._connect(sb)
        sb.machine = self._machine(spec, self._nics(sb))
        self._live[spec.id] = sb
        try:
            await sb.boot(prepare)
        except BaseException:
            await self.release(sb, graceful=False)
            raise
        return sb

    # -- the pool --------------------------------------------------------------------------

    async def start_pool(self) -> None:
        """Fill the pool in the background (after restore destroyed the last daemon's VMs;
        their spare taps go here)."""
        running = set(await asyncio.to_thread(self.hv.names, POOL_PREFIX))
        if self.network is not None:
            tokens = {name[len(POOL_PREFIX) :][:8] for name in running}
            await asyncio.to_thread(self.network.drop_stray_spares, tokens)
        await self.pool_vms.sweep(running)
        if self.template is not None:
            self.template.start()
        else:
            await asyncio.to_thread(sweep_template, self.config.root)
        self.pool.start()

    async def close(self) -> None:
        """Daemon shutdown: the pool's VMs go (a restart boots a new pool); a template being
        made is dropped (one made is kept for the next start)."""
        if self.template is not None:
            await self.template.close()
        await self.pool.close()

    def template_status(self) -> str:
        """ "ready" (VMs start as its clones), "making" or "off" (no template)."""
        if self.template is None:
            return "off"
        return "ready" if self.template.ready() else "making"

    @staticmethod
    def is_pooled(name: str) -> bool:
        """Whether a VM was booted for the pool (it keeps its name when a container takes it)."""
        return name.startswith(POOL_PREFIX)

    def _fits_pool(self, spec: SandboxSpec) -> bool:
        """Pool VMs have the default size, no 9p share (shares are not hot-pluggable) and,
        with networking, one NIC that becomes the first network's (so not for a container
        on no network, or with a MAC address of its own)."""
        return (
            spec.cpus == self.config.cpus
            and spec.memory == self.config.memory_bytes
            and not spec.shares
            and not spec.mac
            and not (spec.networks and spec.networks[0].mac)
            and bool(spec.networks) == (self.network is not None)
        )

    async def _take_over(self, sb: Sandbox, spec: SandboxSpec, prepare: Prepare | None) -> Sandbox:
        """Make a pool VM the sandbox ``spec`` asks for: the disks it holds given to the
        sandbox (the rest hot-plugged), console log moved to its place, network reserved
        (its NIC becomes the first network's), the other NICs hot-plugged, the pod named
        and addressed."""
        console, spare = sb.spec.console_log, sb.spare
        sb.hand_over(dataclasses.replace(spec, id=sb.id), prepare)
        sb.spare = None
        self._live[sb.id] = sb
        try:
            disks = await self.pool_vms.hand_disks(sb, spec.disks)
            sb.serials = disks.serials
            await asyncio.to_thread(move_console, console, spec.console_log)
            if spec.networks and self.network is not None:
                await self._connect(sb, spare)
            for nic in self._nics(sb)[1:]:
                await sb.machine.attach_nic(nic)
            for disk in disks.plugs:
                await sb.machine.attach_disk(disk)
            await sb.setup_pod(nic_wait=HOTPLUG_WAIT)
        except BaseException:
            await self.release(sb, graceful=False)
            if spare is not None:  # not renamed into an endpoint's tap: still the pool's
                await asyncio.to_thread(self.network.drop_spare, spare)
            await asyncio.to_thread(shutil.rmtree, Path(console).parent, True)
            raise
        log.debug("pool VM %s is now the sandbox of %s", sb.id, spec.owner[:12])
        return sb

    def _nics(self, sb: Sandbox) -> list[designer.NicSpec]:
        return [designer.NicSpec(ep.mac, tap=ep.tap) for ep in sb.endpoints]

    async def _connect(self, sb: Sandbox, spare: SpareNic | None = None) -> None:
        """An endpoint per network (eth0, eth1... in order; the first on ``spare``, the NIC
        a pool VM has), then the published ports."""
        owner = sb.spec.owner
        try:
            for i, req in enumerate(sb.spec.networks):
                ep = await asyncio.to_thread(
                    self.network.attach, owner, req.network, req.ip, f"eth{i}", spare, req.mac
                )
                sb.link_local[ep.device] = req.link_local
                spare = None
                sb.endpoints.append(ep)
            sb.endpoints = _with_mac(sb.endpoints, sb.spec)
            sb.published = await asyncio.to_thread(
                self.network.publish, owner, sb.spec.port_requests
            )
        except BaseException:
            await asyncio.to_thread(self.network.detach, owner)
            sb.endpoints = []
            raise

    async def adopt(self, spec: SandboxSpec, prepare: Prepare | None = None) -> Sandbox | None:
        """The sandbox of a VM still running after a daemon restart; None if it is gone."""
        state = await asyncio.to_thread(self.hv.state, spec.id)
        if state not in ("running", "paused"):
            return None
        sb = Sandbox(spec, self._machine(spec, []), self.config.agent_timeout)
        if spec.networks and self.network is not None:
            endpoints = await asyncio.to_thread(self.network.endpoints, spec.owner)
            sb.endpoints = _with_mac(endpoints, spec)
            sb.published = await asyncio.to_thread(self.network.ports, spec.owner)
        if state == "paused":  # a paused guest cannot answer: wake it to re-attach
            await sb.resume()
        await sb.adopt(prepare)
        if self.is_pooled(spec.id):  # its disks may be on other serials than asked for
            with contextlib.suppress(HyperError):  # gone: its agent's end follows
                sb.serials = live_serials(spec.disks, await sb.machine.disks())
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
        if self.network is not None:
            await asyncio.to_thread(self.network.detach, sb.spec.owner)
        sb.endpoints, sb.published = [], []
        self._stop_reasons.pop(sb.id, None)

    # -- hot-plug ---------------------------------------------------------------------------

    async def connect(self, sb: Sandbox, req: NicRequest) -> Endpoint:
        """Join a running sandbox to one more network: endpoint, hot-plugged NIC, address
        (and the default route when it had none)."""
        used = {ep.device for ep in sb.endpoints}
        device = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
        owner = sb.spec.owner
        ep = await asyncio.to_thread(
            self.network.attach, owner, req.network, req.ip, device, None, req.mac
        )
        sb.link_local[device] = req.link_local
        plugged = False
        try:
            await sb.machine.attach_nic(designer.NicSpec(ep.mac, tap=ep.tap))
            plugged = True
            await sb.setup_nic(ep, wait=HOTPLUG_WAIT)
            had_route = any(not e.internal for e in sb.endpoints)
            sb.endpoints.append(ep)
            if not had_route:
                await sb.set_default_route()
        except BaseException:
            if ep in sb.endpoints:
                sb.endpoints.remove(ep)
            if plugged:
                with contextlib.suppress(HyperError):
                    await sb.machine.detach_nic(ep.mac)
            await asyncio.to_thread(self.network.detach, owner, ep.network)
            raise
        return ep

    async def disconnect(self, sb: Sandbox, network_id: str) -> None:
        """Take a running sandbox off a network: address gone in the guest, NIC unplugged,
        endpoint freed (and the default route moved to the next network)."""
        ep = next((e for e in sb.endpoints if e.network == network_id), None)
        if ep is None:
            return
        had_route = next((e for e in sb.endpoints if not e.internal), None) == ep
        with contextlib.suppress(AgentError):
            await sb.agent.delete_interface(ep.mac)
        await sb.machine.detach_nic(ep.mac)
        sb.endpoints.remove(ep)
        await asyncio.to_thread(self.network.detach, sb.spec.owner, network_id)
        sb.published = await asyncio.to_thread(self.network.ports, sb.spec.owner)
        if had_route:
            await sb.set_default_route()

    # -- VM ends ---------------------------------------------------------------------------

    def vm_stopped(self, name: str, reason: str) -> None:
        """libvirt event: domain ``name`` stopped (remembered to explain the container's
        exit; the event names the domain, not the sandbox)."""
        log.debug("libvirt: domain %s stopped (%s)", name, reason)
        for sid, sb in list(self._live.items()):
            if sb.machine is not None and sb.machine.name == name:
                self._stop_reasons[sid] = reason

    async def end_reason(self, sb: Sandbox) -> str:
        """Why the sandbox's VM ended under its containers."""
        for _ in range(100):  # libvirt's event trails the agent's socket closing (1.5 s seen)
            if sb.id in self._stop_reasons:
                break
            await asyncio.sleep(0.05)
        why = self._stop_reasons.pop(sb.id, "")
        return END_REASONS.get(why, f"vm {why}" if why else "vm ended unexpectedly")

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


#: What a container's ``Reason`` says for each way libvirt saw its VM stop.
END_REASONS = {
    "shutdown": "guest powered off",
    "failed": "qemu process died (killed or crashed)",
    "crashed": "guest kernel crashed",
    "destroyed": "vm destroyed outside hyperd",
}


def _with_mac(endpoints: list[Endpoint], spec: SandboxSpec) -> list[Endpoint]:
    """The endpoints, the first with the MAC address the user chose, if any (the tap keeps
    its own)."""
    if not endpoints or not spec.mac:
        return endpoints
    return [dataclasses.replace(endpoints[0], mac=spec.mac), *endpoints[1:]]
