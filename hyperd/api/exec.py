"""Exec endpoints: create, start (hijacked or detached), resize, inspect."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from hyperd.errors import HyperError, InvalidArgument

from . import common, decode, detach, streams
from .fields import Fields, query_int

routes = web.RouteTableDef()


@routes.post("/containers/{id}/exec")
async def create(request):
    spec = decode.exec_spec(await common.body(request))
    ex = common.containers(request).execs.create(request.match_info["id"], spec)
    return web.json_response({"Id": ex.id}, status=201)


@routes.post("/exec/{id}/start")
async def start(request):
    f = Fields(await common.body(request))
    execs = common.containers(request).execs
    ex = execs.get(request.match_info["id"])
    size = decode.console_size(f)
    if size is not None:
        ex.spec.console_size = size
    raw = f.bool("Tty")  # as Docker: the start's Tty says whether output is framed
    if f.bool("Detach"):
        await execs.start(ex.id, detach=True)
        return web.Response(status=200)
    execs.check_startable(ex.id)
    conn = await streams.hijack(request, raw)
    try:
        await execs.start(ex.id)
    except HyperError as exc:
        # As Docker: the connection is already upgraded, so the error goes down the stream
        # and the exit code (126/127) is the exec's, read by the client from inspect.
        text = exc.message.encode() + b"\r\n"
        await conn.write(text if raw else streams.frame("stdout", text))
        await conn.close()
        return conn.response
    agent, io = ex.agent, ex.io

    async def pump_out(stream_obj, name):
        async for chunk in stream_obj.chunks():
            if not await conn.write(chunk if raw else streams.frame(name, chunk)):
                return

    async def outputs():
        outs = [pump_out(io.stdout_stream, "stdout")]
        if io.stderr_stream is not None:
            outs.append(pump_out(io.stderr_stream, "stderr"))
        await asyncio.gather(*outs)
        # Docker ends the stream when the process has exited, so an inspect right after
        # it sees the exit code; the exit event trails the output's EOF.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(io.exited), 10)

    stdin = None
    if ex.spec.attach_stdin:
        keys = detach.parse(ex.spec.detach_keys or detach.DEFAULT) if ex.spec.tty else b""
        stdin = streams.pump_stdin(
            conn,
            lambda chunk: agent.write_stdin(io.stdio, chunk),
            lambda: agent.close_stdin(io.stdio),
            keys,
        )
    return await streams.serve(conn, outputs(), stdin)


@routes.post("/exec/{id}/resize")
async def resize(request):
    h = query_int(request.query, "h", 0, lo=0)
    w = query_int(request.query, "w", 0, lo=0)
    if h > 0xFFFF or w > 0xFFFF:
        raise InvalidArgument("terminal size out of range")
    await common.containers(request).execs.resize(request.match_info["id"], h, w)
    return web.Response(status=200)


@routes.get("/exec/{id}/json")
async def inspect(request):
    ex = common.containers(request).execs.get(request.match_info["id"])
    return web.json_response(
        {
            "ID": ex.id,
            "ContainerID": ex.container,
            "Running": ex.running,
            "ExitCode": ex.exit_code,
            "OpenStdin": ex.spec.attach_stdin,
            "OpenStdout": ex.spec.attach_stdout,
            "OpenStderr": ex.spec.attach_stderr,
            "CanRemove": False,
            "DetachKeys": ex.spec.detach_keys,
            "Pid": 0,
            "ProcessConfig": {
                "entrypoint": ex.spec.cmd[0],
                "arguments": ex.spec.cmd[1:],
                "tty": ex.spec.tty,
                "user": ex.spec.user,
                "privileged": ex.spec.privileged,
            },
        }
    )
