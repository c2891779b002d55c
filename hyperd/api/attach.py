"""Attaching to a container: ``POST /containers/{id}/attach`` (a hijacked connection) and
``GET /containers/{id}/attach/ws`` (a websocket; output in binary messages, never framed).

Both take Docker's query: ``logs`` (replay the log first), ``stream`` (then follow the
output), ``stdin``/``stdout``/``stderr`` and ``detachKeys`` (with a tty only; by default
ctrl-p,ctrl-q). An attach may come before the start: stdin waits for the process.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from hyperd.containers.model import Container

from . import common, decode, detach, streams
from .fields import query_bool

routes = web.RouteTableDef()


@dataclass
class Options:
    """What an attach asks for."""

    logs: bool
    stream: bool
    stdin: bool
    want: set[str]
    detach_keys: bytes

    @classmethod
    def of(cls, request: web.Request, tty: bool) -> Options:
        q = request.query
        keys = decode.detach_keys(q.get("detachKeys")) or detach.DEFAULT
        return cls(
            logs=query_bool(q, "logs"),
            stream=query_bool(q, "stream") or not query_bool(q, "logs"),
            stdin=query_bool(q, "stdin"),
            want={s for s in ("stdout", "stderr") if query_bool(q, s)},  # Docker: off unless asked
            detach_keys=detach.parse(keys) if tty else b"",
        )


class Session:
    """One attached client: the output it gets and the stdin it gives."""

    def __init__(self, request: web.Request):
        self.svc = common.containers(request)
        self.c: Container = self.svc.store.get(request.match_info["id"])
        self.svc.check_responsive(self.c)
        self.opts = Options.of(request, self.c.config.tty)
        # subscribed before the connection is taken over, so no output falls in between
        self.output = self.svc.io(self.c).output
        self.queue = self.output.subscribe() if self.opts.stream else None

    async def chunks(self) -> AsyncIterator[tuple[str, bytes]]:
        """(stream, data): the log when asked, then the live output until the run ends."""
        try:
            if self.opts.logs:
                async for _, stream, data in self.svc.logs(self.c):
                    if stream in self.opts.want:
                        yield stream, data
            if self.queue is None:
                return
            while (item := await self.queue.get()) is not None:
                if item[0] in self.opts.want:
                    yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop receiving output."""
        if self.queue is not None:
            self.output.unsubscribe(self.queue)

    async def pump_stdin(self, conn):
        """The client's input to the container's stdin (once it runs); see streams.pump_stdin."""
        c, svc = self.c, self.svc
        agent = await svc.running_agent(c)

        async def write(chunk: bytes) -> None:
            if agent is not None:
                await agent.write_stdin(c.stdio_seq, chunk)

        async def close() -> None:
            if c.config.stdin_once and agent is not None:
                with contextlib.suppress(Exception):
                    await agent.close_stdin(c.stdio_seq)

        return await streams.pump_stdin(conn, write, close, self.opts.detach_keys)


@routes.post("/containers/{id}/attach")
async def attach(request):
    session = Session(request)
    tty = session.c.config.tty
    try:
        conn = await streams.hijack(request, tty)
    except BaseException:
        session.close()
        raise

    async def pump_out():
        async for stream, data in session.chunks():
            if not await conn.write(data if tty else streams.frame(stream, data)):
                return

    stdin = session.pump_stdin(conn) if session.opts.stdin else None
    return await streams.serve(conn, pump_out(), stdin)


class _WebSocketInput:
    """A websocket's messages as a hijacked connection's ``read()``: bytes, None at close."""

    def __init__(self, ws: web.WebSocketResponse):
        self.ws = ws

    async def read(self) -> bytes | None:
        async for msg in self.ws:
            if msg.type == WSMsgType.BINARY:
                return msg.data
            if msg.type == WSMsgType.TEXT:
                return msg.data.encode()
        return None


@routes.get("/containers/{id}/attach/ws")
async def attach_ws(request):
    session = Session(request)
    ws = web.WebSocketResponse()
    try:
        await ws.prepare(request)
    except BaseException:
        session.close()
        raise

    async def pump_out():
        async for _, data in session.chunks():
            try:
                await ws.send_bytes(data)
            except ConnectionError:
                return

    stdin = session.pump_stdin(_WebSocketInput(ws)) if session.opts.stdin else None
    conn = _WebSocketConn(ws)
    await streams.serve(conn, pump_out(), stdin)
    return ws


class _WebSocketConn:
    """What streams.serve needs of a connection: close() (and the response to return)."""

    def __init__(self, ws: web.WebSocketResponse):
        self.response = ws

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.response.close()
