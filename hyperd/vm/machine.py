"""The VM driver: one Machine is one guest (libvirt domain + hyperstart agent).

A machine is a transient libvirt domain: it exists while it runs and libvirt owns it,
so VMs survive a restart of hyperd, which re-attaches to their agent sockets.

``spec`` is the shape the machine boots with. Disks and NICs added or removed later live
in the domain only: its live XML is the truth, and devices are found there by disk serial
and NIC MAC.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from hyperd.agent import protocol as p
from hyperd.agent.client import AgentClient, AgentError
from hyperd.errors import Conflict, HyperError, NotFound

from . import designer
from . import domain as d
from .stats import VMStats
from .users import VMUsers
from .virt import Domain, Hypervisor

# Where `make install` puts the guest kernel and initrd.
INSTALL_DIR = Path("/usr/local/lib/hyper")
DOMAIN_PREFIX = "hyper-"

Prepare = Callable[[AgentClient], None]
# How long a guest gets to release an unplugged device (ACPI eject; slow under TCG).
DETACH_WAIT_S = 20.0


@dataclass
class GuestAssets:
    """The guest kernel and the initrd that holds hyperstart."""

    kernel: str
    initrd: str

    @classmethod
    def locate(cls, kernel: str | None = None, initrd: str | None = None) -> GuestAssets:
        """Explicit paths (config) win, then $HYPER_KERNEL/$HYPER_INITRD, then INSTALL_DIR."""
        kernel = kernel or os.environ.get("HYPER_KERNEL") or str(INSTALL_DIR / "vmlinux")
        initrd = initrd or os.environ.get("HYPER_INITRD") or str(INSTALL_DIR / "initrd.img")
        for what, path in (("kernel", kernel), ("initrd", initrd)):
            if not os.path.isfile(path):
                raise HyperError(f"guest {what} not found at {path} (run `make install`)")
        return cls(kernel, initrd)


class Machine:
    """A guest VM: build its domain, boot it, talk to its agent, tear it down.

    With ``users``, QEMU runs as a user of its own that may open this VM's disks and no
    other file of the daemon (not for VMs with 9p shares, which need root, nor on xen).
    """

    def __init__(
        self,
        hv: Hypervisor,
        spec: designer.VMSpec,
        hypervisor: str,
        tb_cache_mib: int,
        users: VMUsers | None = None,
    ):
        self.hv = hv
        self.spec = spec
        self.hypervisor = hypervisor
        self.tb_cache_mib = tb_cache_mib
        self.users = users if hypervisor in ("kvm", "qemu") and not spec.shares else None
        self.agent: AgentClient | None = None
        self._devices_lock = threading.Lock()

    @property
    def name(self) -> str:
        """The libvirt domain name."""
        return self.spec.name

    def domain_xml(self) -> str:
        """The libvirt XML this machine boots with."""
        return designer.design(self.spec, self.hypervisor, self.tb_cache_mib).to_xml()

    async def boot(self, timeout: float = 60.0, prepare: Prepare | None = None) -> AgentClient:
        """Start the domain and return a connected agent (READY and version checked).

        ``prepare(agent)`` runs before the agent connects, to register process streams
        that may already have frames waiting.
        """
        return await self._start(timeout, prepare)

    async def restore(
        self, state: str, timeout: float = 60.0, prepare: Prepare | None = None
    ) -> AgentClient:
        """As ``boot``, for a clone of a template: the domain (``spec.incoming``, RAM
        mapping the template's file) loads the template's saved ``state`` and runs on
        from where the template stopped, its agent waiting for a host."""
        return await self._start(timeout, prepare, state)

    async def save(self, state: str, settle: float = 0.2, timeout: float = 60.0) -> None:
        """Make this VM a template: its agent let go (``settle`` seconds for the guest to
        see it gone), the guest paused and its CPU and device state written to
        ``state`` (its RAM is in its shared file already), then the domain destroyed."""
        if self.agent is not None:
            await self.agent.close()
        await asyncio.sleep(settle)

        def save() -> None:
            dom = self.hv.lookup(self.name)
            dom.suspend()
            tmp = f"{state}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                dom.save_state(fd, timeout)
            finally:
                os.close(fd)
            os.replace(tmp, state)

        try:
            await asyncio.to_thread(save)
        finally:
            await self.destroy()

    async def _start(self, timeout: float, prepare: Prepare | None, state: str = "") -> AgentClient:
        for sock in (self.spec.control_socket, self.spec.stream_socket):
            Path(sock).parent.mkdir(parents=True, exist_ok=True)
            Path(sock).unlink(missing_ok=True)
        if self._run_dir().name == self.name:  # libvirtd binds the sockets, QEMU gets fds
            self._run_dir().chmod(0o700)
        Path(self.spec.console_log).parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._own_user)
        try:
            dom = await asyncio.to_thread(self.hv.create, self.domain_xml())
        except BaseException:
            await asyncio.to_thread(self._release_user)
            raise
        try:
            if state:
                await asyncio.to_thread(_load_state, dom, state, timeout)
            return await self.attach(timeout, wait_ready=True, prepare=prepare)
        except AgentError as exc:
            await self.destroy()
            why = await asyncio.to_thread(console_reason, self.spec.console_log)
            if why:
                raise AgentError(f"{exc.message} (console: {why})") from exc
            raise
        except BaseException:
            await self.destroy()
            raise

    def _run_dir(self) -> Path:
        return Path(self.spec.control_socket).parent

    def _own_user(self) -> None:
        """Before boot: a uid for QEMU, let into the VM's disks (and nothing else)."""
        if self.users is None:
            return
        uid = self.users.claim(self.name)
        self.spec.user = (uid, self.users.gid)
        files = {x.path: not x.readonly for x in self.spec.disks}
        if self.spec.ram_file is not None:  # QEMU 7 opens it read-write even to map it private
            files[self.spec.ram_file.path] = True
        try:
            self.users.grant(uid, files)
        except BaseException:
            self._release_user()
            raise

    def _adopt_user(self) -> None:
        """A VM booted before the daemon restarted: its uid (live XML) and disks, leased."""
        if self.users is None or self.spec.user is not None:
            return
        try:
            xml = self.hv.lookup(self.name).xml()
        except NotFound:
            return  # gone: connecting to its agent fails next
        self.spec.user = designer.own_user(xml)
        if self.spec.user is None:  # booted as libvirt's user (an older daemon)
            self.users = None
            return
        # a disk file moved away since boot (a pool VM's blank disk, now a container's
        # layer) is in the lease under its new path already
        disks = {
            x.source: not x.readonly for x in d.Devices.parse(xml).disks if os.path.exists(x.source)
        }
        self.users.adopt(self.name, self.spec.user[0], disks)

    def _release_user(self) -> None:
        """The VM has ended: its uid opens none of its files any more and is free."""
        if self.users is not None and self.spec.user is not None:
            self.users.release(self.spec.user[0])
            self.spec.user = None

    async def attach(
        self, timeout: float = 10.0, wait_ready: bool = False, prepare: Prepare | None = None
    ) -> AgentClient:
        """Connect to the agent of an already running domain."""
        await asyncio.to_thread(self._adopt_user)
        agent = AgentClient(self.spec.control_socket, self.spec.stream_socket)
        if prepare is not None:
            prepare(agent)
        try:
            await agent.connect(timeout, wait_ready=wait_ready)
        except AgentError as exc:
            await agent.close()
            raise AgentError(f"VM {self.name}: {exc.message}") from exc
        self.agent = agent
        return agent

    async def power_off(self, timeout: float = 10.0) -> None:
        """Ask the agent to sync and power off; destroy the domain if it does not."""
        if self.agent is not None and self.agent.connected:
            try:
                await asyncio.wait_for(self.agent.call(p.Code.DESTROYPOD), timeout)
                await self._wait_gone(timeout)
            except (AgentError, TimeoutError):
                pass
        await self.destroy()

    async def _wait_gone(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if await asyncio.to_thread(self.hv.state, self.name) in (None, "shutoff"):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError

    async def destroy(self) -> None:
        """Hard-stop the domain (if still there) and close the agent."""
        if self.agent is not None:
            await self.agent.close()
        await asyncio.to_thread(self.hv.destroy, self.name)
        await asyncio.to_thread(self._release_user)
        if self._run_dir().name == self.name:
            shutil.rmtree(self._run_dir(), ignore_errors=True)

    async def pause(self) -> None:
        """Suspend the guest's vCPUs (``docker pause``); its agent stays connected."""
        await self._on_domain(Domain.suspend)

    async def resume(self) -> None:
        """Let a paused guest run again."""
        await self._on_domain(Domain.resume)

    async def stats(self) -> VMStats:
        """CPU, memory, disk and NIC counters of the VM."""
        return await self._on_domain(Domain.stats)

    async def attach_disk(self, spec: designer.DiskSpec) -> None:
        """Hot-plug a disk; the agent finds it by ``spec.serial``. The VM's own user is
        let into the file just before (and out again if the plug fails)."""
        uid = self.spec.user[0] if self.users is not None and self.spec.user else None
        granted = False

        def make(devs: d.Devices) -> d.Disk:
            nonlocal granted
            disk = designer.disk(spec, self.hypervisor, [x.target for x in devs.disks])
            if uid is not None:
                granted = True
                self.users.grant(uid, {spec.path: not spec.readonly})
            return disk

        try:
            await self._attach(
                lambda devs: devs.disk(spec.serial), f"disk with serial {spec.serial}", make
            )
        except BaseException:
            if granted:
                await asyncio.to_thread(self._revoke_unless_plugged, uid, spec.path)
            raise

    async def move_disk(self, src: str, dst: str) -> None:
        """Rename one of the running VM's disk files onto ``dst`` (same filesystem): QEMU
        keeps the file open, so ``dst`` names the VM's disk from now on (the live XML still
        says ``src``; disks are found by serial). The VM's user keeps its access to the
        file, recorded under ``dst`` before the rename so that the VM's end revokes it."""

        def move() -> None:
            if self.users is not None and self.spec.user is not None:
                self.users.moved(self.spec.user[0], src, dst)
            os.replace(src, dst)
            self.spec.disks = [
                dataclasses.replace(x, path=dst) if x.path == src else x for x in self.spec.disks
            ]

        await asyncio.to_thread(move)

    async def disks(self) -> list[tuple[str, str]]:
        """The running VM's disks as (source path, serial), from its live XML."""
        xml = await self._on_domain(Domain.xml)
        return [(x.source, x.serial) for x in d.Devices.parse(xml).disks]

    async def detach_disk(self, serial: str, wait: float = DETACH_WAIT_S) -> None:
        """Unplug the disk with this serial once the guest has let it go (unmount it first);
        the VM's own user may open its file no more."""
        detached = await self._detach(
            lambda devs: devs.disk(serial), f"disk with serial {serial}", wait
        )
        if self.users is not None and self.spec.user is not None:
            uid = self.spec.user[0]
            await asyncio.to_thread(self._revoke_unless_plugged, uid, detached.source)

    def _revoke_unless_plugged(self, uid: int, path: str) -> None:
        """Take ``path`` from the VM's user unless another of its disks still uses it."""
        try:
            disks = d.Devices.parse(self.hv.lookup(self.name).xml()).disks
        except HyperError:  # the VM is gone
            disks = []
        if all(x.source != path for x in disks):
            self.users.revoke(uid, path)

    async def attach_nic(self, spec: designer.NicSpec) -> None:
        """Hot-plug a NIC; the agent finds it by ``spec.mac`` (SETUPINTERFACE)."""
        await self._attach(
            lambda devs: devs.interface(spec.mac),
            f"NIC with MAC {spec.mac}",
            lambda _devs: designer.nic(spec, self.hypervisor),
        )

    async def detach_nic(self, mac: str, wait: float = DETACH_WAIT_S) -> None:
        """Unplug the NIC with this MAC once the guest has let it go."""
        await self._detach(lambda devs: devs.interface(mac), f"NIC with MAC {mac}", wait)

    async def _attach(
        self,
        find: Callable[[d.Devices], d.Device | None],
        what: str,
        make: Callable[[d.Devices], d.Device],
    ) -> None:
        def attach(dom: Domain) -> None:
            with self._devices_lock:  # two attaches would pick the same free target name
                devices = d.Devices.parse(dom.xml())
                if find(devices) is not None:
                    raise Conflict(f"VM {self.name} already has a {what}")
                dom.attach_device(make(devices).to_device_xml())

        await self._on_domain(attach)

    async def _detach(
        self, find: Callable[[d.Devices], d.Device | None], what: str, wait: float
    ) -> d.Device:
        def detach(dom: Domain) -> d.Device:
            with self._devices_lock:
                device = find(d.Devices.parse(dom.xml()))
                if device is None:
                    raise NotFound(f"VM {self.name} has no {what}")
                dom.detach_device(device.to_device_xml(), wait=wait)
                return device

        return await self._on_domain(detach)

    async def _on_domain(self, action: Callable[[Domain], object]):
        """Run ``action(domain)`` in a thread on a fresh handle (libvirtd may have restarted)."""
        return await asyncio.to_thread(lambda: action(self.hv.lookup(self.name)))


def _load_state(dom: Domain, state: str, timeout: float) -> None:
    fd = os.open(state, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dom.load_state(fd, timeout)
    finally:
        os.close(fd)


async def sweep_users(hv: Hypervisor, users: VMUsers, running: Collection[str]) -> list[str]:
    """At the daemon's start: revoke the users of VMs that ended while it was away, or
    that it destroyed as nothing needed them (``running``: its VMs libvirt still runs);
    their names."""

    def sweep() -> list[str]:
        live = set()
        for name in running:
            try:
                user = designer.own_user(hv.lookup(name).xml())
            except NotFound:
                continue
            if user is not None:
                live.add(user[0])
        return users.sweep(live)

    return await asyncio.to_thread(sweep)


def console_tail(path: str, lines: int = 15) -> str:
    """The last lines of a console log ("" if there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""


def console_reason(path: str) -> str:
    """The console's last word on why a guest gave up: the agent's last line or a kernel
    panic ("" when it says neither)."""
    for line in reversed(console_tail(path, 40).splitlines()):
        line = line.strip()
        for mark in ("Kernel panic", "hyperstart: "):
            if mark in line:
                return line[line.index(mark) :][:200]
    return ""
