"""The host ends of what flows from a guest: process output streams, archive transfers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

# Output chunks (at most 64 KiB each) buffered per stream before its reader waits.
STREAM_QUEUE_CHUNKS = 256


@dataclass
class OutputStream:
    """Chunks of one guest->host seq; None marks EOF."""

    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(STREAM_QUEUE_CHUNKS))
    done: bool = False
    taken: Callable[[int], None] | None = None  # told the size of each chunk read

    async def get(self) -> bytes | None:
        """The next chunk, or None at EOF."""
        chunk = await self.queue.get()
        if chunk and self.taken is not None:
            self.taken(len(chunk))
        return chunk

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield data until EOF."""
        while (chunk := await self.get()) is not None:
            yield chunk

    async def read_all(self) -> bytes:
        """Everything until EOF."""
        return b"".join([c async for c in self.chunks()])

    def end(self) -> None:
        """EOF now: what is queued is dropped (a reader blocked on the full queue moves on)."""
        if self.done:
            return
        self.done = True
        while not self.queue.empty():
            chunk = self.queue.get_nowait()
            if chunk and self.taken is not None:
                self.taken(len(chunk))
        self.queue.put_nowait(None)


@dataclass
class Transfer:
    """Host end of an archive transfer: its guest->host stream (ARCHIVEOUT only) and
    its "finished" event."""

    container: str
    job: str
    seq: int
    stream: OutputStream | None
    finished: asyncio.Future  # of protocol.Event


@dataclass
class ProcessIO:
    """Host end of one guest process: its output streams and how it ended."""

    container: str
    process: str
    stdio: int
    stderr: int
    stdout_stream: OutputStream
    stderr_stream: OutputStream | None
    finished: asyncio.Future  # of the protocol.Event that reported its end
    exited: asyncio.Future = field(init=False)  # of its exit status alone (an int)

    def __post_init__(self) -> None:
        self.exited = _status_of(self.finished)

    @property
    def oom_killed(self) -> bool:
        """Once it has ended: did the OOM killer kill a process of its container meanwhile?"""
        end = self.finished
        return (
            end.done()
            and not end.cancelled()
            and end.exception() is None
            and (end.result().oom_killed)
        )


def _status_of(finished: asyncio.Future) -> asyncio.Future:
    """A future of the exit status of the event ``finished`` resolves with (its error, or
    cancellation, passed on)."""
    exited = finished.get_loop().create_future()

    def copy(done: asyncio.Future) -> None:
        if exited.done():
            return
        if done.cancelled():
            exited.cancel()
        elif done.exception() is not None:
            exited.set_exception(done.exception())
            exited.exception()  # a waiter may never come; do not warn about it
        else:
            exited.set_result(done.result().status)

    finished.add_done_callback(copy)
    return exited
