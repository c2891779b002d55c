"""A container's output on the host: one log writer per container (kept across restarts,
closed at removal) and a fan-out to attached clients, with back-pressure.

The pump takes a chunk from the guest only when the log has it and every attached client
has room for it, so a guest that writes faster than the disk or a reader stalls in its own
VM (virtio-serial stops taking its output) instead of growing the daemon's memory. A client
that takes nothing for STALL_LIMIT seconds is cut off, so it cannot pin a container.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from dataclasses import dataclass, field
from pathlib import Path

from hyperd.agent.client import OutputStream, ProcessIO

from .logs import LogLimits, LogWriter

log = logging.getLogger(__name__)
SPACE_RETRY = 1.0  # seconds between tries to write a log on a full disk
INIT = "init"  # the agent's id for a container's main process
ATTACH_QUEUE = 64  # chunks (≤ 64 KiB each) an attached client may lag behind
STALL_LIMIT = 60.0


@dataclass
class Output:
    """Fan-out of a container's output to attached clients; None ends a run's output."""

    listeners: set[asyncio.Queue] = field(default_factory=set)

    def subscribe(self) -> asyncio.Queue:
        """A queue of (stream, data) items, then None when the current run's output ends."""
        q: asyncio.Queue = asyncio.Queue(ATTACH_QUEUE)
        self.listeners.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        """Stop delivering to ``q``."""
        self.listeners.discard(q)

    async def publish(self, item) -> None:
        """Deliver one item to every listener, waiting while one is full (back-pressure)."""
        for q in list(self.listeners):
            if q.full():
                try:
                    await asyncio.wait_for(q.put(item), STALL_LIMIT)
                except TimeoutError:
                    self._cut(q)
            else:
                q.put_nowait(item)

    def end(self) -> None:
        """End of this run's output: listeners get None and are dropped."""
        for q in list(self.listeners):
            self._cut(q)

    def _cut(self, q: asyncio.Queue) -> None:
        self.listeners.discard(q)
        if q.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                q.get_nowait()
        q.put_nowait(None)


class ContainerIO:
    """The log file and output fan-out of one container, for its whole life."""

    def __init__(self, log_path: Path, limits: LogLimits | None):
        self.log_path = log_path
        self.limits = limits  # None: the "none" log driver
        self.output = Output()
        self._writer: LogWriter | None = None
        self.size: tuple[int, int] = (0, 0)  # the main process's terminal, rows x columns

    def writer(self) -> LogWriter | None:
        """The log writer (opened on first use, then reused across restarts)."""
        if self.limits is not None and self._writer is None:
            self._writer = LogWriter(self.log_path, self.limits)
        return self._writer

    def pump(self, io: ProcessIO) -> asyncio.Task:
        """Copy a run's output to the log and to attached clients until EOF."""
        return asyncio.create_task(self._pump(io))

    async def _pump(self, io: ProcessIO) -> None:
        writer = self.writer()

        async def copy(stream: OutputStream, name: str) -> None:
            async for chunk in stream.chunks():
                if writer is not None:
                    await self._log(writer, name, chunk)
                await self.output.publish((name, chunk))

        try:
            streams = [copy(io.stdout_stream, "stdout")]
            if io.stderr_stream is not None:
                streams.append(copy(io.stderr_stream, "stderr"))
            await asyncio.gather(*streams)
        finally:
            self.output.end()

    async def _log(self, writer: LogWriter, name: str, chunk: bytes) -> None:
        """Write a chunk to the log; on a full disk, wait for space (the guest keeps the
        output it cannot send meanwhile: the stream is not read)."""
        try:
            writer.write(name, chunk)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
        log.warning("log %s: the disk is full; output waits for space", self.log_path)
        while True:
            await asyncio.sleep(SPACE_RETRY)
            try:
                writer.flush()
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                continue
            log.warning("log %s: space is back; output goes on", self.log_path)
            return

    def close(self) -> None:
        """The container is removed: end attached clients and close the log."""
        self.output.end()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
