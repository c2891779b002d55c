"""Asyncio client of the in-guest agent (hyperstart).

One AgentClient per VM: it owns the two channel sockets, answers commands in order,
multiplexes process output by stream seq and delivers exit events.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from hyperd.errors import HyperError

from . import protocol as p

log = logging.getLogger(__name__)

# Output chunks buffered per stream before the reader stops taking frames from the
# guest (back-pressure reaches the guest through virtio-serial).
STREAM_QUEUE_CHUNKS = 256
# How long a command may wait for its answer unless the caller says otherwise.
DEFAULT_TIMEOUT = 30.0


class AgentError(HyperError):
    """The agent answered ERROR, broke the protocol, or went away.

    ``process_exit_code`` is Docker's code for a process that could not start (126, 127)
    and ``errno`` the guest's errno when it reported one; both None otherwise. (``exit_code``
    stays the CLI's, as for every HyperError.)
    """

    status = 500

    def __init__(
        self, message: str, process_exit_code: int | None = None, errno: int | None = None
    ):
        super().__init__(message)
        self.process_exit_code = process_exit_code
        self.errno = errno


class AgentTimeout(AgentError):
    """A command got no answer in time (a hung or overloaded guest)."""


@dataclass
class OutputStream:
    """Chunks of one guest->host seq; None marks EOF."""

    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(STREAM_QUEUE_CHUNKS))
    done: bool = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield data until EOF."""
        while True:
            chunk = await self.queue.get()
            if chunk is None:
                return
            yield chunk

    async def read_all(self) -> bytes:
        """Everything until EOF."""
        return b"".join([c async for c in self.chunks()])


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
    """Host end of one guest process: its output streams and its exit status."""

    container: str
    process: str
    stdio: int
    stderr: int
    stdout_stream: OutputStream
    stderr_stream: OutputStream | None
    exited: asyncio.Future


class AgentClient:
    """Talks to hyperstart over the control and stream sockets of one VM."""

    def __init__(self, control_path: str, stream_path: str):
        self.control_path = control_path
        self.stream_path = stream_path
        self._ctl_w: asyncio.StreamWriter | None = None
        self._str_w: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task] = []
        self._pending: list[asyncio.Future] = []
        self._lock = asyncio.Lock()
        self._ready = asyncio.Event()
        self._streams: dict[int, OutputStream] = {}
        self._exits: dict[tuple[str, str], asyncio.Future] = {}
        self._transfers: dict[tuple[str, str], Transfer] = {}
        self._closed: asyncio.Future | None = None
        self._seq = itertools.count(time.time_ns() // 1000)

    # -- connection --------------------------------------------------------------------

    async def connect(self, timeout: float = 30.0, wait_ready: bool = True) -> int:
        """Open both channels, wait for READY (at boot) and check the agent's version.

        ``wait_ready=False`` is for re-adopting a running VM, whose agent said READY
        long ago (it says it again on reconnect, which is harmless).
        """
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        deadline = loop.time() + timeout
        ctl_r, self._ctl_w = await _open_unix(self.control_path, deadline)
        str_r, self._str_w = await _open_unix(self.stream_path, deadline)
        self._tasks = [
            asyncio.create_task(self._read_control(ctl_r)),
            asyncio.create_task(self._read_streams(str_r)),
        ]
        if wait_ready:
            await self._until(self._ready.wait(), deadline, "agent READY")
        answer = await self._until(self.call(p.Code.GETVERSION), deadline, "GETVERSION")
        version = json.loads(answer or b"{}").get("version")
        if version != p.API_VERSION:
            await self.close()
            raise AgentError(f"agent speaks protocol {version}, hyperd {p.API_VERSION}")
        return version

    async def _until(self, aw, deadline: float, what: str):
        remaining = deadline - asyncio.get_running_loop().time()
        waiter = asyncio.ensure_future(aw)
        done, _ = await asyncio.wait(
            {waiter, self._closed}, timeout=max(remaining, 0), return_when=asyncio.FIRST_COMPLETED
        )
        if waiter in done:
            return waiter.result()
        waiter.cancel()
        if self._closed in done:
            raise AgentError(f"agent channel closed while waiting for {what}")
        raise AgentError(f"timed out waiting for {what}")

    async def close(self) -> None:
        """Close both channels; pending calls and waiters fail with AgentError."""
        for task in self._tasks:
            task.cancel()
        for w in (self._ctl_w, self._str_w):
            if w is not None:
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()
        self._fail_all("agent connection closed")

    @property
    def connected(self) -> bool:
        """True until a channel closes."""
        return self._closed is not None and not self._closed.done()

    # -- commands ----------------------------------------------------------------------

    async def call(
        self, code: int, payload: dict | bytes | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> bytes:
        """Send one command and return the ACK payload.

        ERROR raises AgentError (with the guest's message, exit code and errno); no
        answer within ``timeout`` seconds raises AgentTimeout.
        """
        if not self.connected:
            raise AgentError("agent is not connected")
        if isinstance(payload, dict):
            payload = p.json_payload(payload)
        ok, data = await self._exchange(p.encode_control(code, payload or b""), code, timeout)
        if not ok:
            info = p.decode_error(data)
            raise AgentError(info.message, process_exit_code=info.exit_code, errno=info.errno)
        return data

    async def send_raw(self, frame: bytes, timeout: float = DEFAULT_TIMEOUT) -> tuple[bool, bytes]:
        """Send a pre-built (possibly malformed) frame; return (acked, payload)."""
        return await self._exchange(frame, None, timeout)

    async def _exchange(self, frame: bytes, code, timeout: float) -> tuple[bool, bytes]:
        # A future we give up on stays queued (cancelled): the late answer is matched to
        # it and dropped, so later answers stay in step with their commands.
        fut = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                async with self._lock:
                    self._pending.append(fut)
                    self._ctl_w.write(frame)
                    await self._ctl_w.drain()
                return await fut
        except TimeoutError:
            name = getattr(code, "name", "command")
            raise AgentTimeout(f"agent did not answer {name} within {timeout:g} s") from None

    async def ping(self) -> None:
        """PING the agent."""
        await self.call(p.Code.PING)

    def new_seq(self) -> int:
        """A stream seq that no process of this VM uses."""
        return next(self._seq)

    # -- processes ---------------------------------------------------------------------

    def open_process(self, container: str, process: str, stdio: int, stderr: int = 0) -> ProcessIO:
        """Register a process's streams and exit before the command that starts it."""
        out = self._streams.setdefault(stdio, OutputStream())
        err = self._streams.setdefault(stderr, OutputStream()) if stderr else None
        fut = self._exits.get((container, process))
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._exits[(container, process)] = fut
        return ProcessIO(container, process, stdio, stderr, out, err, fut)

    def forget_process(self, io: ProcessIO) -> None:
        """Drop the bookkeeping of a process whose start failed or which was reaped.

        Streams the guest has not ended end now (readers see EOF); later frames for
        them are dropped.
        """
        for seq in (io.stdio, io.stderr):
            if seq:
                self._end_stream(self._streams.pop(seq, None))
        self._exits.pop((io.container, io.process), None)

    def open_transfer(self, container: str, job: str, seq: int, outgoing: bool) -> Transfer:
        """Register an archive transfer before ARCHIVEOUT (``outgoing``) or ARCHIVEIN."""
        stream = self._streams.setdefault(seq, OutputStream()) if outgoing else None
        fut = asyncio.get_running_loop().create_future()
        xfer = Transfer(container, job, seq, stream, fut)
        self._transfers[(container, job)] = xfer
        return xfer

    def forget_transfer(self, xfer: Transfer) -> None:
        """Drop a transfer's bookkeeping; frames still coming for it are dropped."""
        if xfer.stream is not None:
            self._end_stream(self._streams.pop(xfer.seq, None))
        self._transfers.pop((xfer.container, xfer.job), None)
        if not xfer.finished.done():
            xfer.finished.cancel()

    @staticmethod
    def _end_stream(stream: OutputStream | None) -> None:
        """EOF now for a stream the guest has not ended (what it sent is dropped, and a
        frame reader blocked on the full queue moves on); an ended stream keeps its
        queued data for a slow reader."""
        if stream is None or stream.done:
            return
        stream.done = True
        while not stream.queue.empty():
            stream.queue.get_nowait()
        stream.queue.put_nowait(None)

    async def write_stdin(self, seq: int, data: bytes) -> None:
        """Send stdin data in frames (empty data sends nothing; see close_stdin)."""
        for off in range(0, len(data), p.MAX_STREAM_DATA):
            self._str_w.write(p.encode_stream(seq, data[off : off + p.MAX_STREAM_DATA]))
            await self._str_w.drain()

    async def close_stdin(self, seq: int) -> None:
        """Send EOF on a process's stdin."""
        self._str_w.write(p.encode_stream(seq))
        await self._str_w.drain()

    # -- readers -----------------------------------------------------------------------

    async def _read_control(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                code, size = p.decode_control_header(
                    await reader.readexactly(p.CONTROL_HEADER.size)
                )
                self._on_control(code, await reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError):
            self._fail_all("agent control channel closed")
        except p.ProtocolError as exc:
            self._fail_all(f"agent broke the protocol: {exc}")

    def _on_control(self, code: int, payload: bytes) -> None:
        if code in (p.Code.ACK, p.Code.ERROR):
            if not self._pending:
                log.warning("agent answered %s with no command pending", code)
                return
            fut = self._pending.pop(0)
            if not fut.done():
                fut.set_result((code == p.Code.ACK, payload))
        elif code == p.Code.READY:
            self._ready.set()
        elif code == p.Code.PROCESSASYNCEVENT:
            self._on_event(payload)
        else:
            log.warning("agent sent unexpected code %d", code)

    def _on_event(self, payload: bytes) -> None:
        try:
            ev = p.decode_event(payload)
        except p.ProtocolError as exc:
            log.warning("%s", exc)
            return
        key = (ev.container, ev.process)
        xfer = self._transfers.get(key)
        if xfer is not None:
            if not xfer.finished.done():
                xfer.finished.set_result(ev)
            return
        fut = self._exits.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._exits[key] = fut
        if not fut.done():
            fut.set_result(ev.status)

    async def _read_streams(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                seq, size = p.decode_stream_header(await reader.readexactly(p.STREAM_HEADER.size))
                data = await reader.readexactly(size)
                stream = self._streams.get(seq)
                if stream is None or stream.done:
                    continue
                if not data:
                    stream.done = True
                await stream.queue.put(data or None)
        except (asyncio.IncompleteReadError, ConnectionError):
            self._fail_all("agent stream channel closed")
        except p.ProtocolError as exc:
            self._fail_all(f"agent broke the stream protocol: {exc}")

    def _fail_all(self, reason: str) -> None:
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(reason)
        for fut in self._pending:
            if not fut.done():
                fut.set_exception(AgentError(reason))
        self._pending.clear()
        for stream in self._streams.values():
            if not stream.done:
                stream.done = True
                try:
                    stream.queue.put_nowait(None)
                except asyncio.QueueFull:  # EOF after what the reader has yet to take
                    self._tasks.append(asyncio.ensure_future(stream.queue.put(None)))
        futures = [*self._exits.values(), *(x.finished for x in self._transfers.values())]
        for fut in futures:
            if not fut.done():
                fut.set_exception(AgentError(reason))
                fut.exception()  # a waiter may never come; do not warn about it


async def _open_unix(path: str, deadline: float):
    """Connect to a unix socket that QEMU may not be listening on yet."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return await asyncio.open_unix_connection(path, limit=1 << 20)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            if loop.time() >= deadline:
                raise AgentError(f"cannot connect to agent channel {path}: {exc}") from exc
            await asyncio.sleep(0.02)
