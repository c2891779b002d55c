"""The VMs of the pool: how one boots (with the disks its taker will likely want), what
makes one unfit to hand out, and the disk part of a sandbox taking one.

A pool VM lives in ``<root>/pool/<vid>/`` (console log, blank disk) and boots with:
- a blank writable disk (``BlankDisk``, registered by the containers' side: the same file
  a container's writable layer is when created), which a sandbox asking for a blank disk
  of the same serial takes by moving the file onto its own path;
- the shared read-only disks (an image's root disk) of the last sandbox that fit the pool
  (remembered before it takes a VM, so the refill that take starts boots with them): the
  most recent image is the likeliest next one, and a run of one image, as a loop of
  ``run --rm``, finds its disk in place every time.

A pool VM whose shared disk's file is gone or was replaced (``rmi``, then a pull of the
same image) is not handed out: it is discarded at ``take`` and as soon as the image side
reports root disks removed (``Pool.prune``), so a removed image's blocks are not held by
a waiting VM; the next pool VM boots without it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from hyperd.config import Config
from hyperd.network import Network
from hyperd.vm import designer
from hyperd.vm.designer import DiskSpec
from hyperd.vm.machine import DOMAIN_PREFIX, Machine, console_tail

from .disks import Held, Plan, file_key, plan, same_filesystem
from .sandbox import Sandbox, SandboxSpec
from .template import Template
from .warmup import warm_up

log = logging.getLogger(__name__)
POOL_PREFIX = f"{DOMAIN_PREFIX}pool-"


@dataclass(frozen=True)
class BlankDisk:
    """How a blank writable disk is made (``make(path)``) and the serial it is asked by."""

    serial: str
    name: str  # its file name in the pool VM's directory
    make: Callable[[Path], Awaitable[None]]


class PoolVMs:
    """Boots, checks and discards pool VMs; ``machine(spec, nics)`` builds a VM."""

    def __init__(
        self,
        config: Config,
        machine: Callable[[SandboxSpec, list[designer.NicSpec]], Machine],
        network: Network | None,
        template: Template | None = None,
        warm: bool = False,
    ):
        self.config = config
        self.dir = Path(config.root) / "pool"
        self._machine, self.network, self.template = machine, network, template
        self.warm = warm  # run a warm-up container before handing a VM out (TCG)
        self.blank: BlankDisk | None = None
        self.root_fstype = "erofs"  # the filesystem of the shared disks (images' root disks)
        self.shared: list[DiskSpec] = []  # the shared disks of the last sandbox that fit

    async def fill(self) -> Sandbox:
        """A VM for the pool: ``boot()``, then (``warm``) its warm-up (``warmup.py``)."""
        sb = await self.boot()
        if self.warm:
            try:
                await warm_up(sb, self.root_fstype)
            except BaseException:
                await self.discard(sb)
                raise
        return sb

    async def boot(self) -> Sandbox:
        """A pool VM, READY, with the blank disk and the remembered shared ones: a clone of
        the template (its disks and NIC hot-plugged) when there is one, else booted."""
        token = secrets.token_hex(6)
        vid = f"{POOL_PREFIX}{token}"
        vdir = self.dir / vid
        spec = SandboxSpec(
            id=vid,
            owner="",
            hostname="",
            cpus=self.config.cpus,
            memory=self.config.memory_bytes,
            console_log=str(vdir / "console.log"),
            metadata={"pool": "1"},
        )
        sb = Sandbox(spec, self._machine(spec, []), self.config.agent_timeout)
        try:
            sb.held = await self._disks(vdir)
            if self.network is not None:
                sb.spare = await asyncio.to_thread(self.network.spare_nic, token)
            nics = [designer.NicSpec(sb.spare.mac, tap=sb.spare.tap)] if sb.spare else []
            if self.template is not None and self.template.ready():
                await self.template.clone(sb)
                for held in sb.held:
                    await sb.machine.attach_disk(held.spec)
                for nic in nics:
                    await sb.machine.attach_nic(nic)
            else:
                spec.disks = [h.spec for h in sb.held]
                sb.machine = self._machine(spec, nics)
                await sb.boot_vm()
        except BaseException:
            tail = await asyncio.to_thread(console_tail, spec.console_log)
            log.warning("pool VM %s did not boot; its console ended with:\n%s", vid, tail)
            await self.discard(sb)
            raise
        return sb

    async def _disks(self, vdir: Path) -> list[Held]:
        """The disks a new pool VM boots with (its directory made for them)."""
        await asyncio.to_thread(vdir.mkdir, 0o711, True)
        await asyncio.to_thread(vdir.chmod, 0o711)  # QEMU, as the VM's user, reaches its disk
        held = []
        for disk in self.shared:
            key = await asyncio.to_thread(file_key, disk.path)
            if key is not None:  # a removed image's disk is not booted with
                held.append(Held(disk, key))
        if self.blank is not None:
            path = vdir / self.blank.name
            await self.blank.make(path)
            held.append(Held(DiskSpec(str(path), self.blank.serial, blank=True)))
        return held

    async def discard(self, sb: Sandbox) -> None:
        """Destroy a pool VM and its tap and files."""
        await sb.destroy()
        if sb.spare is not None and self.network is not None:
            await asyncio.to_thread(self.network.drop_spare, sb.spare)
        await asyncio.to_thread(shutil.rmtree, Path(sb.spec.console_log).parent, True)

    @staticmethod
    def unfit(sb: Sandbox) -> str:
        """Why a ready pool VM must not be handed out ("" if it may)."""
        gone = next((h.spec.path for h in sb.held if not h.intact()), None)
        return f"its disk {gone} was removed or replaced" if gone else ""

    def remember(self, disks: list[DiskSpec]) -> None:
        """The next pool VMs boot with these disks' shared ones (an image's root disk)."""
        shared = [d for d in disks if d.shared and d.readonly]
        if shared:
            self.shared = shared

    async def hand_disks(self, sb: Sandbox, disks: list[DiskSpec]) -> Plan:
        """The disk part of a pool VM becoming a sandbox: held blank files moved onto the
        requested paths (the VM's user keeps its grant on the moved file); returns what is
        left to hot-plug and the serial each disk has. ``sb.held`` is emptied."""
        held, sb.held = sb.held, []
        out = await asyncio.to_thread(plan, disks, held, same_filesystem)
        for src, dst in out.moves:
            await sb.machine.move_disk(src, dst)
        return out

    async def sweep(self, running: set[str]) -> None:
        """At the daemon's start: the files of pool VMs that are gone (the last daemon's
        pool was destroyed by restore; a taken VM's directory went at take-over)."""

        def sweep() -> None:
            if not self.dir.is_dir():
                return
            for entry in self.dir.iterdir():
                if entry.name not in running:
                    shutil.rmtree(entry, ignore_errors=True)

        await asyncio.to_thread(sweep)


def move_console(src: str, dst: str) -> None:
    """The pool VM's console log becomes the sandbox's (virtlogd keeps writing it); the
    pool VM's directory goes (with a held blank disk no sandbox took: QEMU keeps it open)."""
    tmp = f"{dst}.new"
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Path(tmp).unlink(missing_ok=True)
    os.link(src, tmp)
    os.replace(tmp, dst)
    shutil.rmtree(Path(src).parent, ignore_errors=True)
