"""Processes started with ``exec`` in running containers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hyperd.agent.client import AgentError, ProcessIO
from hyperd.agent.facade import Agent
from hyperd.errors import CannotExecute, CommandNotFound, Conflict, NotFound

from .process import exec_process
from .spec import ExecSpec

if TYPE_CHECKING:
    from .service import ContainerService

log = logging.getLogger(__name__)
# How long a finished exec stays inspectable with no client asking (Docker keeps them until
# the container goes; a bound keeps an exec storm from growing the daemon).
FORGET_AFTER = 300.0
# The guest's output comes on a channel of its own and may trail the exit event; under a
# loaded host, by seconds. It is kept this long for the client still reading it.
OUTPUT_GRACE = 30.0


@dataclass
class Exec:
    """An exec: created, then started once."""

    id: str
    container: str
    spec: ExecSpec
    running: bool = False
    exit_code: int | None = None
    io: ProcessIO | None = None
    agent: Agent | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.spec.console_size or (0, 0)


class Execs:
    """Every exec of the daemon's containers."""

    def __init__(self, service: ContainerService):
        self.service = service
        self._by_id: dict[str, Exec] = {}

    def create(self, ref: str, spec: ExecSpec) -> Exec:
        """Register an exec in a running container."""
        c = self.service.store.get(ref)
        self.service.check_exec_target(c)
        ex = Exec(secrets.token_hex(32), c.id, spec)
        self._by_id[ex.id] = ex
        self.service.events.publish(
            "container", f"exec_create: {' '.join(spec.cmd)}", c.id, **self.service.event_attrs(c)
        )
        return ex

    def get(self, eid: str) -> Exec:
        """An exec by ID."""
        ex = self._by_id.get(eid)
        if ex is None:
            raise NotFound(f"No such exec instance: {eid}")
        return ex

    def check_startable(self, eid: str) -> Exec:
        """Conflict unless the exec can start now (not started yet, its container running)."""
        ex = self.get(eid)
        if ex.running or ex.exit_code is not None:
            raise Conflict(f"exec {eid} has already been started")
        self.service.check_exec_target(self.service.store.get(ex.container))
        return ex

    async def start(self, eid: str, detach: bool = False) -> Exec:
        """Start an exec's process; its streams are in ``ex.io`` (discarded when ``detach``:
        nobody reads them), its agent in ``ex.agent``."""
        ex = self.check_startable(eid)
        svc = self.service
        c = svc.store.get(ex.container)
        run = svc.monitor.run(c.id)
        agent = run.sandbox.agent
        seq = svc.new_seq
        ex.io = agent.open_process(c.id, ex.id, seq(), 0 if ex.spec.tty else seq())
        proc = exec_process(c, ex.id, ex.spec, ex.io.stdio, ex.io.stderr, ex.size)
        try:
            await agent.exec(c.id, proc)
        except AgentError as exc:
            agent.forget_process(ex.io)
            ex.exit_code = exc.process_exit_code or 126
            kind = CommandNotFound if ex.exit_code == 127 else CannotExecute
            raise kind(exc.message) from exc
        ex.running, ex.agent = True, agent
        if ex.spec.tty and ex.size != (proc.rows, proc.columns):
            # a resize came while the process was starting (the docker CLI sends it then)
            with contextlib.suppress(AgentError):
                await agent.winsize(c.id, ex.id, *ex.size)
        if not ex.spec.attach_stdin and not ex.spec.tty:
            await agent.close_stdin(ex.io.stdio)
        svc.events.publish(
            "container", f"exec_start: {' '.join(ex.spec.cmd)}", c.id, **svc.event_attrs(c)
        )
        if detach:
            for stream in (ex.io.stdout_stream, ex.io.stderr_stream):
                if stream is not None:
                    svc.spawn(_discard(stream))
        svc.spawn(self._finish(ex, agent))
        return ex

    async def _finish(self, ex: Exec, agent: Agent) -> None:
        try:
            ex.exit_code = await ex.io.exited
        except AgentError:
            ex.exit_code = 137
        finally:
            ex.running = False
            await _output_ended(ex.io, OUTPUT_GRACE)
            agent.forget_process(ex.io)
            c = self.service.store.find(ex.container)
            if c is not None:
                self.service.events.publish(
                    "container", "exec_die", c.id, execID=ex.id, exitCode=ex.exit_code,
                    **self.service.event_attrs(c),
                )  # fmt: skip
            await asyncio.sleep(FORGET_AFTER)
            self._by_id.pop(ex.id, None)

    async def resize(self, eid: str, rows: int, cols: int) -> None:
        """Set the terminal size of an exec."""
        ex = self.get(eid)
        ex.spec.console_size = (rows, cols)
        if ex.running and ex.spec.tty and ex.agent is not None:
            try:
                await ex.agent.winsize(ex.container, ex.id, rows, cols)
            except AgentError as exc:
                raise Conflict(f"cannot resize exec {eid}: {exc.message}") from exc

    def container_exited(self, cid: str) -> None:
        """The container's run ended: its execs ended with it."""
        for ex in self._by_id.values():
            if ex.container == cid and ex.running:
                ex.running = False
                if ex.exit_code is None:
                    ex.exit_code = 137

    def drop_container(self, cid: str) -> None:
        """The container is removed: forget its execs."""
        for eid in [e.id for e in self._by_id.values() if e.container == cid]:
            del self._by_id[eid]

    def ids(self, cid: str) -> list[str]:
        """The exec IDs of a container (inspect's ExecIDs)."""
        return [e.id for e in self._by_id.values() if e.container == cid]


async def _output_ended(io: ProcessIO, timeout: float) -> None:
    """Wait (bounded) until the guest has ended a process's output streams."""
    deadline = asyncio.get_running_loop().time() + timeout
    streams = [x for x in (io.stdout_stream, io.stderr_stream) if x is not None]
    waited = 0
    while not all(x.done for x in streams) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        waited += 1
    if waited > 20:
        log.info("output of exec %s ended %.1f s after its exit", io.process[:12], waited / 20)


async def _discard(stream) -> None:
    """Read a stream nobody is attached to, so it never holds the VM's output channel."""
    async for _ in stream.chunks():
        pass
