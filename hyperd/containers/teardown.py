"""The VMs of ended runs going down in the background, and what waits for them.

libvirt needs 1-2 s under TCG to take a VM down, so an ended run's sandbox is released in
the background. A new start of the container waits for its last VM, and for every VM still
going down that holds one of its volumes: QEMU locks a disk for writing, so a second VM
cannot open it before the first has ended (``run --rm -v v:/x`` twice in a row). A removed
container's files are deleted once its VM is gone. A daemon that stops lets these end first
(bounded): cut short, they would leave a VM's tap, or a removed container's directory, for
the next start to sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from typing import TYPE_CHECKING

from hyperd.sandbox import Sandbox

from . import boot as booting
from .model import Container
from .volumes import has_durable_mounts, volume_names

if TYPE_CHECKING:
    from .service import ContainerService


class Teardowns:
    """The VMs going down: by container (its last run's) and by volume (those holding it)."""

    def __init__(self, service: ContainerService):
        self.service = service
        self._by_container: dict[str, asyncio.Task] = {}
        self._by_volume: dict[str, set[asyncio.Task]] = {}
        self._inflight: set[asyncio.Task] = set()  # teardowns and deletions not yet done

    def start(self, c: Container, sb: Sandbox) -> None:
        """Take an ended run's sandbox down in the background."""
        booting.clear_network(c)
        # A --rm container's writable layer is discarded, so its VM may be destroyed at
        # once, unless volumes or binds are mounted: those must be synced and unmounted.
        graceful = not c.host.auto_remove or has_durable_mounts(c)
        task = self._track(self.service.spawn(self._down(sb, graceful)))
        self._by_container[c.id] = task
        for name in volume_names(c):
            self._by_volume.setdefault(name, set()).add(task)
            task.add_done_callback(lambda t, name=name: self._released(name, t))

    async def _down(self, sb: Sandbox, graceful: bool) -> None:
        await self.service.sandboxes.release(sb, graceful=graceful)
        await self.service.refresh_hosts()

    def _released(self, name: str, task: asyncio.Task) -> None:
        held = self._by_volume.get(name)
        if held is not None:
            held.discard(task)
            if not held:
                del self._by_volume[name]

    async def wait(self, c: Container) -> None:
        """Wait until the VM of c's last run is gone, and every VM still going down that
        holds one of c's volumes (before a VM of c opens them)."""
        pending = self._by_container.pop(c.id, None)
        if pending is not None:
            await _settled(pending)
        for name in volume_names(c):
            for task in list(self._by_volume.get(name, ())):
                await _settled(task)

    def delete_files(self, c: Container) -> None:
        """Delete a removed container's disk and logs in the background, once its VM is gone."""
        self._track(self.service.spawn(self._delete_files(c, self._by_container.pop(c.id, None))))

    def _track(self, task: asyncio.Task) -> asyncio.Task:
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    async def finish(self, timeout: float) -> None:
        """Daemon shutdown: wait, at most ``timeout`` seconds, for the VMs going down and
        the removed containers' files being deleted."""
        pending = [t for t in self._inflight if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def _delete_files(self, c: Container, teardown: asyncio.Task | None) -> None:
        if teardown is not None:
            await _settled(teardown)
        await asyncio.to_thread(shutil.rmtree, self.service.dir(c), True)


async def _settled(task: asyncio.Task) -> None:
    """Wait for a teardown, whatever its outcome; cancelling the waiter leaves it running."""
    with contextlib.suppress(Exception):
        await asyncio.shield(task)
