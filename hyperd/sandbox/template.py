"""The VM template (config ``factory = "template"``): VMs start as clones, not boots.

One VM of the default size is booted once to READY with its RAM in a file (shared, so
the guest's writes reach the file), its agent let go, paused, and its CPU and device state
saved (QEMU's migration with ``x-ignore-shared``: the RAM stays out of the stream, ~0.4 MB).
A clone is a new domain whose RAM maps that file private (copy-on-write) and whose QEMU
loads the saved state instead of booting: its guest runs on from the template's READY,
its agent sees a host connect and says READY again. The clones' unwritten pages are the
file's, shared in the host's page cache by all of them.

A template VM has no disk and no NIC (their MAC addresses and files are per VM); a clone
gets them hot-plugged, as a pool VM's extra devices are. Its clock and random state are the
template's until STARTPOD sets them (the host's time and a fresh seed).

Files, in ``<root>/template/`` (0711): ``ram``, ``state`` and ``key``, what the template
was made from (kernel, initrd, QEMU binary, vCPUs, memory, kernel arguments). A key that
differs from today's (a new kernel or initrd, a QEMU upgrade, another default size, a hyper
with other kernel arguments) or a clone that fails to load the state make the template
go; it is made again in the background, and starts boot meanwhile. The files survive a
daemon restart, and are used again if the key still matches.

QEMU 7 opens the RAM file read-write even to map it private (``rom=off`` with a read-only
file came in QEMU 8.2), so each clone's QEMU user is let into it: see docs/isolation.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from hyperd.vm import designer
from hyperd.vm.machine import DOMAIN_PREFIX, Machine, console_tail
from hyperd.vm.virt import StateError

from .pool import assets_key
from .sandbox import Sandbox, SandboxSpec

log = logging.getLogger(__name__)
TEMPLATE_PREFIX = f"{DOMAIN_PREFIX}template-"
QEMU_BINARY = "/usr/bin/qemu-system-x86_64"
RETRY_S = 30.0  # pause after a failed build (a broken kernel must not spin)


class Template:
    """The daemon's template; ``machine(spec)`` builds a VM with no disk and no NIC."""

    def __init__(
        self,
        root: str,
        spec: Callable[[str], SandboxSpec],
        machine: Callable[[SandboxSpec], Machine],
        key: Callable[[], dict],
        agent_timeout: float,
    ):
        self.dir = Path(root) / "template"
        self.ram, self.state, self.key_file = self.dir / "ram", self.dir / "state", self.dir / "key"
        self._spec, self._machine, self._key = spec, machine, key
        self.agent_timeout = agent_timeout
        self._task: asyncio.Task | None = None
        self._failed_at = 0.0

    def ready(self) -> bool:
        """Whether clones can start now: files there and made from today's assets. A
        stale template is removed and a new one started in the background."""
        if self._task is not None and not self._task.done():
            return False
        if self._current():
            return True
        self.start()
        return False

    def _current(self) -> bool:
        try:
            made = json.loads(self.key_file.read_text())
        except (OSError, ValueError):
            return False
        return made == self._key() and self.ram.is_file() and self.state.is_file()

    def start(self) -> None:
        """Make the template in the background unless it is current or being made."""
        if self._task is not None and not self._task.done():
            return
        loop = asyncio.get_running_loop()
        if self._failed_at and loop.time() - self._failed_at < RETRY_S:
            return
        self._task = asyncio.create_task(self._build())

    async def _build(self) -> None:
        if self._current():
            return
        await asyncio.to_thread(self._remove)
        try:
            await self._make()
        except asyncio.CancelledError:
            await asyncio.to_thread(self._remove)
            raise
        except Exception as exc:  # noqa: BLE001 - logged; VMs boot meanwhile
            self._failed_at = asyncio.get_running_loop().time()
            log.warning("template: not made: %s", getattr(exc, "message", exc))
            await asyncio.to_thread(self._remove)

    async def _make(self) -> None:
        key = self._key()
        spec = self._spec(f"{TEMPLATE_PREFIX}{os.urandom(6).hex()}")
        await asyncio.to_thread(self._prepare_files, spec.memory)
        machine = self._machine(spec)
        machine.spec.ram_file = designer.RamFile(str(self.ram), shared=True)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            await machine.boot(timeout=self.agent_timeout)
            await machine.save(str(self.state))
        except BaseException:
            await machine.destroy()
            tail = await asyncio.to_thread(console_tail, spec.console_log)
            log.info("template VM %s ended; its console:\n%s", spec.id, tail)
            raise
        await asyncio.to_thread(self.key_file.write_text, json.dumps(key))
        log.info("template: made in %.1f s", loop.time() - t0)

    def _prepare_files(self, memory: int) -> None:
        """The directory and a new RAM file (made here: QEMU runs as a user that may not
        create files in it). Never the old file truncated: the old template's clones
        still map it, so it was unlinked (``_remove``) and they keep its pages."""
        self.dir.mkdir(mode=0o711, parents=True, exist_ok=True)
        self.dir.chmod(0o711)
        fd = os.open(self.ram, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, memory)
        finally:
            os.close(fd)

    def _remove(self) -> None:
        for path in (self.key_file, self.state, self.ram):
            path.unlink(missing_ok=True)

    def invalidate(self, why: str) -> None:
        """A clone could not use the template: it goes, and is made again."""
        log.warning("template: dropped (%s)", why)
        self._remove()
        self.start()

    async def clone(self, sb: Sandbox) -> None:
        """Start ``sb`` (its machine with no disk and no NIC) as a clone: RAM mapping the
        template's file, state loaded. A failed load drops the template."""
        sb.machine.spec.ram_file = designer.RamFile(str(self.ram), shared=False)
        sb.machine.spec.incoming = True
        try:
            await sb.boot_vm(timeout=self.agent_timeout, state=str(self.state))
        except StateError as exc:
            self.invalidate(exc.message)
            raise

    async def close(self) -> None:
        """Daemon shutdown: stop a build (its VM destroyed, its files gone)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def template_key(assets: tuple[str, ...], cpus: int, memory: int, accel: str) -> dict:
    """What a template is made from; a template made from other files, sizes or kernel
    arguments (a hyper upgrade may change them; the saved guest booted with the old ones)
    is stale. As JSON reads it back (lists, not tuples), so a key read from disk compares
    equal."""
    files = [list(key) if key else None for key in assets_key((*assets, QEMU_BINARY))]
    return {
        "files": files,
        "cpus": cpus,
        "memory": memory,
        "accel": accel,
        "kernel_args": designer.KERNEL_ARGS,
    }


def sweep(root: str) -> None:
    """Forget a template directory (``factory`` without template)."""
    shutil.rmtree(Path(root) / "template", ignore_errors=True)
