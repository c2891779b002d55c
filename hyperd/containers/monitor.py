"""One exit handler for every container (after moby's daemon/monitor.go).

A run ends one way or another — the agent reports the main process's exit, or the VM goes
away under it (the agent's channels close) — and every path lands in ``handle_exit``, the
only place that records the exit, tells waiters and event subscribers, tears the sandbox
down and applies the restart policy or auto-removal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hyperd.agent.client import AgentError, ProcessIO
from hyperd.sandbox import Sandbox

from .health import HealthChecks
from .model import Container
from .restart import RestartManager

if TYPE_CHECKING:
    from .service import ContainerService

log = logging.getLogger(__name__)
DRAIN_TIMEOUT = 5.0
#: ``Hyper.Reason`` of a run during which the guest kernel's OOM killer killed a process.
OOM_REASON = "oom: the guest kernel killed a process of the container for want of memory"


@dataclass
class Run:
    """One run of a container: its sandbox, main process and output pump."""

    sandbox: Sandbox
    io: ProcessIO
    pump: asyncio.Task
    since: float = field(default_factory=time.monotonic)
    watcher: asyncio.Task | None = None

    async def ended(self, timeout: float | None) -> bool:
        """Did the run end within ``timeout`` s (None: ever)? False as soon as its VM is
        found unresponsive: a hung guest will not end it."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self.sandbox.unresponsive:
            step = 1.0 if deadline is None else min(1.0, deadline - loop.time())
            if step <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.watcher), step)
                return True
        return self.watcher.done()


class Monitor:
    """Watches every run and handles every exit."""

    def __init__(self, service: ContainerService):
        self.service = service
        self._runs: dict[str, Run] = {}
        self._restarts: dict[str, RestartManager] = {}
        self._pending: dict[str, asyncio.Task] = {}  # scheduled restarts
        # Sandboxes an ended run leaves for the container's next run, which follows at once
        # (a restart): their VMs keep running, so the next start boots nothing.
        self._kept: dict[str, Sandbox] = {}
        self._warm: set[str] = set()  # containers being restarted by the user
        self.health = HealthChecks(service)

    def run(self, cid: str) -> Run | None:
        """The current run of a container, if it runs."""
        return self._runs.get(cid)

    def runs(self) -> dict[str, Run]:
        return dict(self._runs)

    def watch(self, c: Container, run: Run) -> None:
        """Follow a run until it ends."""
        self._runs[c.id] = run
        run.watcher = self.service.spawn(self._watch(c, run))
        self.health.start(c, run)

    def forget(self, cid: str) -> Run | None:
        """Stop watching (the container is being removed); return its run, if any."""
        self.cancel_restart(cid)
        self._restarts.pop(cid, None)
        self.health.stop(cid)
        run = self._runs.pop(cid, None)
        if run is not None and run.watcher is not None:
            run.watcher.cancel()
        return run

    async def _watch(self, c: Container, run: Run) -> None:
        reason, oom = "", False
        try:
            status = await run.io.exited
            oom = run.io.oom_killed
            reason = OOM_REASON if oom else ""
        except AgentError:
            status = 137
            if run.sandbox.fenced:  # the guest broke the protocol: its VM is destroyed
                reason = f"protocol violation: {run.sandbox.fenced}"
            elif run.sandbox.unresponsive:
                reason = f"VM not responding ({run.sandbox.unresponsive}), destroyed"
            else:
                reason = await self.service.sandboxes.end_reason(run.sandbox)
        await self.handle_exit(c, run, status, reason, oom)

    def vm_health(self, c: Container, reason: str) -> None:
        """The agent of c's VM stopped answering (``reason``) or answers again (""):
        recorded on c, and a ``vm_unresponsive`` / ``vm_responsive`` event."""
        run = self._runs.get(c.id)
        if run is None or run.sandbox.paused:
            return
        svc = self.service
        c.state.set_vm_health(reason)
        action = "vm_unresponsive" if reason else "vm_responsive"
        extra = {"reason": reason} if reason else {}
        svc.events.publish("container", action, c.id, **svc.event_attrs(c), **extra)
        svc.spawn(svc.store.save(c))

    async def drain(self, run: Run, timeout: float = DRAIN_TIMEOUT) -> None:
        """Let the pump log what the process printed (bounded: a VM may die mid-way)."""
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(run.pump), timeout)
        run.pump.cancel()

    async def handle_exit(
        self, c: Container, run: Run, status: int, reason: str, oom: bool = False
    ) -> None:
        """The one place a run's end is recorded and acted on (``oom``: the OOM killer
        killed a process of the container during the run)."""
        if self._runs.get(c.id) is not run:
            return
        self.health.stop(c.id)
        await self.drain(run)
        del self._runs[c.id]
        svc = self.service
        rm = self._restarts.setdefault(c.id, RestartManager(c.host.restart, c.restart_count))
        rm.policy, rm.restart_count = c.host.restart, c.restart_count
        ran_for = time.monotonic() - run.since
        restart = rm.should_restart(status, c.state.manually_stopped, ran_for)
        warm = c.id in self._warm  # the user restarts it: no auto-removal either, as Docker
        self._warm.discard(c.id)
        if (restart or warm) and run.sandbox.connected:
            run.sandbox.agent.forget_process(run.io)  # the next run's process has the same id
            self._kept[c.id] = run.sandbox
        else:
            await svc.sandboxes.unpublish(run.sandbox)  # host ports are free at once
            svc.teardowns.start(c, run.sandbox)
        svc.execs.container_exited(c.id)
        if restart:
            c.state.set_restarting(status, reason, oom_killed=oom)
        else:
            c.state.set_stopped(status, reason, oom_killed=oom)
        log.info("container %s exited with %d%s", c.id[:12], status, f" ({reason})" * bool(reason))
        await svc.store.save(c)
        if oom:  # as Docker: "oom", then "die"
            svc.events.publish("container", "oom", c.id, **svc.event_attrs(c))
        svc.events.publish("container", "die", c.id, exitCode=status, **svc.event_attrs(c))
        if restart:
            self._pending[c.id] = svc.spawn(self._restart_later(c, rm.delay))
        elif c.host.auto_remove and not warm:
            await svc.remove_exited(c)

    def keep_for_restart(self, cid: str) -> None:
        """The user restarts the container: its run's sandbox serves the next run."""
        self._warm.add(cid)

    async def take_kept(self, c: Container) -> Sandbox | None:
        """The sandbox an ended run left for this start, if its VM still answers."""
        sb = self._kept.get(c.id)
        if sb is not None and not sb.connected:
            await self.drop_kept(c)
        self._warm.discard(c.id)
        return self._kept.pop(c.id, None)

    async def drop_kept(self, c: Container) -> None:
        """No run follows (stopped, removed): take a kept sandbox down."""
        self._warm.discard(c.id)
        sb = self._kept.pop(c.id, None)
        if sb is not None:
            await self.service.sandboxes.unpublish(sb)
            self.service.teardowns.start(c, sb)

    def schedule_restart(self, c: Container) -> None:
        """Restart a container found restarting when the daemon started."""
        rm = self._restarts.setdefault(c.id, RestartManager(c.host.restart, c.restart_count))
        self._pending[c.id] = self.service.spawn(self._restart_later(c, rm.delay))

    def cancel_restart(self, cid: str) -> bool:
        """Cancel a scheduled restart; True if there was one."""
        task = self._pending.pop(cid, None)
        if task is not None and not task.done():
            task.cancel()
            return True
        return False

    async def _restart_later(self, c: Container, delay: float) -> None:
        await asyncio.sleep(delay)
        self._pending.pop(c.id, None)
        await self.service.restart_policy_start(c)
