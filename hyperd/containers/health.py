"""Docker's healthchecks (after moby's daemon/health.go): the container's (or its image's)
HEALTHCHECK runs as a process in the container, through the agent, every interval.

Status goes ``starting`` -> ``healthy`` (a probe exits 0) or ``unhealthy`` (``retries``
failures in a row; failures within the start period do not count). A probe that outlives
its timeout is killed and fails with exit code -1. The last five results are kept with their
first 4 KiB of output. A change of status is a ``health_status: STATUS`` event. Probes are not
execs: no exec list, inspect or event shows them. They run only while the container's run
lasts (the monitor starts and stops them) and wait while the container is paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from typing import TYPE_CHECKING

from hyperd.agent.client import AgentError

from .model import Container
from .process import exec_process
from .spec import ExecSpec, Healthcheck
from .state import now_rfc3339

if TYPE_CHECKING:
    from .monitor import Run
    from .service import ContainerService

log = logging.getLogger(__name__)
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
# Docker's defaults (seconds) and limits.
DEFAULT_INTERVAL = DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
_probe_ids = itertools.count(1)


def command(hc: Healthcheck | None) -> list[str] | None:
    """The probe's command line; None when there is no healthcheck (or it is NONE)."""
    if hc is None or not hc.test or hc.test[0] == "NONE":
        return None
    if hc.test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(hc.test[1:])]
    if hc.test[0] == "CMD":
        return hc.test[1:] or None
    return hc.test  # already a command line (decoding refuses other first words)


def _seconds(ns: int, default: float) -> float:
    return ns / 1e9 if ns > 0 else default


class HealthChecks:
    """The probe loops of every running container that has a healthcheck."""

    def __init__(self, service: ContainerService):
        self.service = service
        self._loops: dict[str, asyncio.Task] = {}

    def start(self, c: Container, run: Run) -> None:
        """Begin probing c's run (a new run starts ``starting``; a re-adopted one goes on)."""
        self.stop(c.id)
        if command(c.config.healthcheck) is None:
            return
        if not c.state.health:
            c.state.set_health(STARTING)
        self._loops[c.id] = self.service.spawn(self._guarded(c, run))

    def stop(self, cid: str) -> None:
        """Stop probing (the run ended, or the container is being removed)."""
        task = self._loops.pop(cid, None)
        if task is not None:
            task.cancel()

    async def _guarded(self, c: Container, run: Run) -> None:
        try:
            await self._loop(c, run)
        except Exception:  # noqa: BLE001 - a broken probe loop must not go unnoticed
            log.exception("healthcheck of %s stopped", c.id[:12])

    async def _loop(self, c: Container, run: Run) -> None:
        hc = c.config.healthcheck
        interval = _seconds(hc.interval, DEFAULT_INTERVAL)
        start_interval = _seconds(hc.start_interval, interval)
        start_period = _seconds(hc.start_period, 0.0)
        began = time.monotonic()
        me = asyncio.current_task()
        # stop() cancels this task, and the loop also ends once stop() has forgotten it:
        # Python 3.11's wait_for can swallow a cancel that comes as the probe's process
        # ends (the stop killed it), and the loop then probed a stopped container.
        while self._loops.get(c.id) is me:
            in_start = time.monotonic() - began < start_period
            await asyncio.sleep(start_interval if in_start and c.state.health == STARTING
                                else interval)  # fmt: skip
            if c.state.paused or self._loops.get(c.id) is not me:
                continue
            result = await self._probe(c, run, _seconds(hc.timeout, DEFAULT_TIMEOUT))
            if self._loops.get(c.id) is not me:
                return
            in_start = time.monotonic() - began < start_period
            await self._record(c, result, hc.retries or DEFAULT_RETRIES, in_start)

    async def _probe(self, c: Container, run: Run, timeout: float) -> dict:
        """Run the probe once: Docker's result ``{Start, End, ExitCode, Output}``."""
        agent, svc = run.sandbox.agent, self.service
        pid = f"health-{next(_probe_ids)}"
        start = now_rfc3339()
        io = agent.open_process(c.id, pid, svc.new_seq(), svc.new_seq())
        proc = exec_process(c, pid, ExecSpec(cmd=command(c.config.healthcheck)),
                            io.stdio, io.stderr, (0, 0))  # fmt: skip
        output = _Output()
        try:
            await agent.exec(c.id, proc)
            await agent.close_stdin(io.stdio)
            readers = [output.read(io.stdout_stream), output.read(io.stderr_stream)]
            try:
                await asyncio.wait_for(asyncio.gather(*readers, asyncio.shield(io.exited)), timeout)
                code = io.exited.result()
            except TimeoutError:
                with contextlib.suppress(AgentError, TimeoutError):
                    await agent.signal(c.id, pid, 9, timeout=5)
                code, output = -1, _Output(f"Health check exceeded timeout ({timeout:g}s)")
        except AgentError as exc:
            code, output = -1, _Output(exc.message.removeprefix("agent: "))
        finally:
            agent.forget_process(io)
        return {"Start": start, "End": now_rfc3339(), "ExitCode": code, "Output": str(output)}

    async def _record(self, c: Container, result: dict, retries: int, in_start: bool) -> None:
        """Docker's handleProbeResult: the log, the failing streak, the status."""
        s = c.state
        before = s.health
        if result["ExitCode"] == 0:
            streak, status = 0, HEALTHY
        elif in_start and before == STARTING:
            streak, status = s.failing_streak, before  # the start period forgives
        else:
            streak = s.failing_streak + 1
            status = UNHEALTHY if streak >= retries else before
        s.set_health(status, streak, [*s.health_log, result][-MAX_LOG_ENTRIES:])
        await self.service.store.save(c)
        if status != before:
            log.info("container %s is %s", c.id[:12], status)
            svc = self.service
            svc.events.publish("container", f"health_status: {status}", c.id, **svc.event_attrs(c))


class _Output:
    """A probe's output: stdout and stderr together, the first MAX_OUTPUT bytes kept."""

    def __init__(self, text: str = ""):
        self.data = bytearray(text.encode())
        self.truncated = False

    async def read(self, stream) -> None:
        if stream is None:
            return
        async for chunk in stream.chunks():
            room = MAX_OUTPUT - len(self.data)
            self.data += chunk[: max(room, 0)]
            self.truncated |= len(chunk) > room

    def __str__(self) -> str:
        text = self.data.decode(errors="replace")
        return text + "..." if self.truncated else text
