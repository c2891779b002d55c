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


class AgentError(HyperError):
    """The agent answered ERROR, broke the protocol, or went away."""

    status = 500


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

    async def call(self, code: int, payload: dict | bytes | None = None) -> bytes:
        """Send one command and return the ACK payload; ERROR raises AgentError."""
        if not self.connected:
            raise AgentError("agent is not connected")
        if isinstance(payload, dict):
            payload = p.json_payload(payload)
        frame = p.encode_control(code, payload or b"")
        fut = asyncio.get_running_loop().create_future()
        async with self._lock:
            self._pending.append(fut)
            self._ctl_w.write(frame)
            await self._ctl_w.drain()
        ok, data = await fut
        if not ok:
            raise AgentError(f"agent: {data.decode(errors='replace')}")
        return data

    async def send_raw(self, frame: bytes) -> tuple[bool, bytes]:
        """Send a pre-built (possibly malformed) frame; return (acked, payload)."""
        fut = asyncio.get_running_loop().create_future()
        async with self._lock:
            self._pending.append(fut)
            self._ctl_w.write(frame)
            await self._ctl_w.drain()
        return await fut

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
        """Drop the bookkeeping of a process whose start failed or which was reaped."""
        self._streams.pop(io.stdio, None)
        if io.stderr:
            self._streams.pop(io.stderr, None)
        self._exits.pop((io.container, io.process), None)

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
            ev = json.loads(payload)
            key, status = (ev["container"], ev["process"]), int(ev["status"])
        except (ValueError, KeyError, TypeError):
            log.warning("malformed process event from agent: %r", payload[:200])
            return
        fut = self._exits.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._exits[key] = fut
        if not fut.done():
            fut.set_result(status)

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
                with contextlib.suppress(asyncio.QueueFull):
                    stream.queue.put_nowait(None)
        for fut in self._exits.values():
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
