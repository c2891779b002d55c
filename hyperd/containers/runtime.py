"""What exists only while a container runs: its VM, its main process, its listeners."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from hyperd.agent.client import AgentClient, OutputStream, ProcessIO
from hyperd.vm.machine import Machine

from .logs import LogWriter

INIT = "init"  # the agent's id for a container's main process


@dataclass
class Output:
    """Fan-out of a container's output to attached clients; None ends a run's output."""

    listeners: set[asyncio.Queue] = field(default_factory=set)

    def subscribe(self) -> asyncio.Queue:
        """A queue of (stream, data) items, then None when the current run's output ends."""
        q: asyncio.Queue = asyncio.Queue()
        self.listeners.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        """Stop delivering to ``q``."""
        self.listeners.discard(q)

    def publish(self, item) -> None:
        """Deliver one item to every listener."""
        for q in self.listeners:
            q.put_nowait(item)

    def end(self) -> None:
        """End of this run's output: listeners get None and are dropped."""
        for q in self.listeners:
            q.put_nowait(None)
        self.listeners.clear()


@dataclass
class Runtime:
    """A running container's VM and main process."""

    machine: Machine
    io: ProcessIO | None = None
    pump: asyncio.Task | None = None
    supervisor: asyncio.Task | None = None

    @property
    def agent(self) -> AgentClient:
        """The agent of the container's VM."""
        return self.machine.agent

    def open_main(self, agent: AgentClient, cid: str, stdio: int, stderr: int) -> None:
        """Register the main process's streams (before the agent connects)."""
        self.io = agent.open_process(cid, INIT, stdio, stderr)

    def start_pump(self, log: LogWriter, output: Output) -> None:
        """Copy the main process's output to the log file and to attached clients."""
        self.pump = asyncio.create_task(pump_output(self.io, log, output))

    async def drain(self, timeout: float = 5.0) -> None:
        """Let the pump write what the process printed (bounded: a VM may die mid-way)."""
        if self.pump is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self.pump), timeout)
            self.pump.cancel()


async def pump_output(io: ProcessIO, log: LogWriter, output: Output) -> None:
    """Read stdout and stderr until EOF, logging and publishing every chunk."""

    async def copy(stream: OutputStream, name: str) -> None:
        async for chunk in stream.chunks():
            log.write(name, chunk)
            output.publish((name, chunk))

    try:
        streams = [copy(io.stdout_stream, "stdout")]
        if io.stderr_stream is not None:
            streams.append(copy(io.stderr_stream, "stderr"))
        await asyncio.gather(*streams)
    finally:
        output.end()
