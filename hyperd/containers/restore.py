"""Live restore: containers outlive hyperd. At start, the records are loaded and the VMs
still running are re-adopted (or destroyed when nothing needs them); at shutdown, VMs are
left running and only the daemon's connections to them close."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import boot as booting
from .state import RESTARTING

if TYPE_CHECKING:
    from .monitor import Run
    from .service import ContainerService

log = logging.getLogger(__name__)


async def restore(svc: ContainerService) -> None:
    """Load records; re-adopt VMs that kept running while hyperd was away."""
    await asyncio.to_thread(svc.store.load)
    for cdir in svc.root.iterdir():
        if cdir.name not in svc.store:  # removed while its VM was torn down
            await asyncio.to_thread(shutil.rmtree, cdir, True)
    vms = await svc.sandboxes.running_vms()
    known = {c.sandbox for c in svc.store}
    for vm in vms - known:
        if svc.sandboxes.is_pooled(vm):
            log.info("destroying the last daemon's pool VM %s (a new pool boots)", vm)
        else:
            log.warning("destroying VM %s that belongs to no container", vm)
        await svc.sandboxes.destroy_vm(vm)
    if svc.sandboxes.network is not None:
        await asyncio.to_thread(svc.sandboxes.network.setup)
        await svc.dns.sync()  # restored networks answer names again
    for c in svc.store:
        # a VM of a stopped container, or one kept for a restart, goes: a fresh start follows
        if c.sandbox in vms and (not c.running or c.state.status == RESTARTING):
            log.warning("destroying VM %s of %s container %s", c.sandbox, c.state.status, c.id[:12])
            await svc.sandboxes.destroy_vm(c.sandbox)
    # together: a guest that does not answer costs its own bound, not everyone's
    await asyncio.gather(*(booting.readopt(svc, c) for c in svc.store if c.running))
    await booting.reconcile_network(svc)


async def shutdown(svc: ContainerService, runs: Iterable[Run]) -> None:
    """Stop following ``runs`` and close their agent connections; their VMs keep running."""
    for run in runs:
        run.pump.cancel()
        if run.sandbox.agent is not None:
            await run.sandbox.agent.client.close()
    if svc.sandboxes.network is not None:
        await asyncio.to_thread(svc.sandboxes.network.close)  # proxies; taps, rules stay
