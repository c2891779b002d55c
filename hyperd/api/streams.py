"""Hijacked connections (attach, exec start) and Docker's multiplexed stream format.

After `101 UPGRADED` the connection is raw both ways: the client's bytes are stdin (a
half-close is EOF), ours are output, framed as
``[stream u8][0 0 0][size u32 big-endian][data]`` unless the process has a tty.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import logging
import struct
import termios

from aiohttp import web

from .detach import EscapeProxy

log = logging.getLogger(__name__)

STREAM_IDS = {"stdin": 0, "stdout": 1, "stderr": 2}
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def frame(stream: str, data: bytes) -> bytes:
    """One frame of the multiplexed format."""
    return struct.pack(">BxxxI", STREAM_IDS[stream], len(data)) + data


class _Upgraded(web.StreamResponse):
    # Like aiohttp's WebSocketResponse: a 101 answer has no length and no chunking.
    _length_check = False


# Stdin bytes taken from a client and not yet passed on: past this, the connection is not
# read until the process (or a guest that never reads) takes some.
STDIN_BUFFER = 1 << 20


class _StdinReader:
    """Parser installed on the upgraded connection: collects the client's raw bytes."""

    def __init__(self):
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.transport: asyncio.Transport | None = None
        self.buffered = 0
        self.paused = False

    def feed_data(self, data: bytes):
        self.queue.put_nowait(bytes(data))
        self.buffered += len(data)
        if self.buffered > STDIN_BUFFER and self.transport is not None and not self.paused:
            self.transport.pause_reading()
            self.paused = True
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)

    async def get(self) -> bytes | None:
        chunk = await self.queue.get()
        if chunk:
            self.buffered -= len(chunk)
            if self.paused and self.buffered <= STDIN_BUFFER // 2:
                self.paused = False
                self.transport.resume_reading()
        return chunk


class Hijacked:
    """Both directions of a hijacked request."""

    def __init__(self, request: web.Request, response: web.StreamResponse, stdin: _StdinReader):
        self.request, self.response, self._stdin = request, response, stdin

    async def read(self) -> bytes | None:
        """Next chunk of stdin from the client; None at EOF (half-close or disconnect)."""
        return await self._stdin.get()

    async def write(self, data: bytes) -> bool:
        """Send output; False once the client is gone."""
        try:
            await self.response.write(data)
            return True
        except (ConnectionError, RuntimeError):
            return False

    async def close(self) -> None:
        """End the connection."""
        transport = self.request.transport
        if transport is not None and not transport.is_closing():
            transport.close()


class _KeepHalfOpen(asyncio.Protocol):
    """Wraps aiohttp's protocol on a hijacked connection to survive a client half-close.

    aiohttp's eof_received() lets asyncio close the transport when the client shuts its
    write side; Docker clients do exactly that to signal stdin EOF, and keep reading.
    """

    def __init__(self, inner: asyncio.Protocol, stdin: _StdinReader):
        self.inner, self.stdin = inner, stdin

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool:
        self.stdin.feed_eof()
        return True

    def connection_lost(self, exc) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


async def hijack(request: web.Request, tty: bool) -> Hijacked:
    """Answer 101 and take over the connection.

    A request without ``Upgrade: tcp`` (docker-py's exec_run) gets Docker's fallback:
    200 and the output as the response body, with no stdin.
    """
    ctype = content_type(tty)
    stdin = _StdinReader()
    if request.headers.get("Upgrade", "").lower() != "tcp":
        resp = web.StreamResponse(status=200, headers={"Content-Type": ctype})
        resp.force_close()
        await resp.prepare(request)
        stdin.feed_eof()
        return Hijacked(request, resp, stdin)
    resp = _Upgraded(status=101, reason="UPGRADED")
    resp.content_type = ctype
    resp.headers["Connection"] = "Upgrade"
    resp.headers["Upgrade"] = "tcp"
    resp.force_close()
    await resp.prepare(request)
    request.protocol.set_parser(stdin)
    transport = request.transport
    transport.set_protocol(_KeepHalfOpen(transport.get_protocol(), stdin))
    stdin.transport = transport
    await _answer_read(transport)
    return Hijacked(request, resp, stdin)


async def _answer_read(transport: asyncio.Transport, limit: float = 1.0) -> None:
    """Wait (at most ``limit`` s) until the client has read the 101 answer.

    docker-py reads the answer through a buffered reader and the stream from the raw socket
    after it: output sent before it parsed the answer is swallowed by the buffer and lost
    (docker/docker-py#3332). The socket's unread byte count (SIOCOUTQ) says when it is safe.
    """
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    unread = array.array("i", [0])
    while loop.time() < deadline:
        try:
            fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, unread)
        except OSError:
            return
        if unread[0] == 0:
            return
        await asyncio.sleep(0.002)


def content_type(tty: bool) -> str:
    """Docker's content type of a container's or exec's output."""
    return RAW if tty else MULTIPLEXED


DETACHED = "detached"


async def pump_stdin(conn: Hijacked, write, close=None, detach_keys: bytes = b""):
    """Copy the client's stdin to a process with ``write(chunk)``, then ``close()`` at EOF.

    With ``detach_keys`` (the process has a tty), typing them ends the session instead:
    the process keeps running with its stdin open, and DETACHED is returned.
    """
    proxy = EscapeProxy(detach_keys) if detach_keys else None
    while (chunk := await conn.read()) is not None:
        detached = False
        if proxy is not None:
            chunk, detached = proxy.feed(chunk)
        if chunk:
            await write(chunk)
        if detached:
            return DETACHED
    if close is not None:
        await close()
    return None


async def serve(conn: Hijacked, output, stdin=None) -> web.StreamResponse:
    """Pump a hijacked connection until the output is done, stdin alongside; a stdin
    pump that returns DETACHED ends the session at once."""
    out_task = asyncio.ensure_future(output)
    stdin_task = asyncio.ensure_future(stdin) if stdin is not None else None
    try:
        if stdin_task is not None:
            await asyncio.wait({out_task, stdin_task}, return_when=asyncio.FIRST_COMPLETED)
            if _detached(stdin_task):
                return conn.response
        await out_task
    finally:
        for task in (out_task, stdin_task):
            if task is not None and not task.done():
                task.cancel()
        await conn.close()
    return conn.response


def _detached(task: asyncio.Task) -> bool:
    if not task.done() or task.cancelled():
        return False
    if task.exception() is not None:
        log.debug("stdin of a hijacked session failed: %r", task.exception())
        return False
    return task.result() == DETACHED
