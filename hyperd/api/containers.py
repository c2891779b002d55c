"""Container endpoints: HTTP in, typed specs to the container service, Docker's shapes out."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from hyperd.containers.state import CONDITIONS
from hyperd.containers.store import LIST_FILTERS
from hyperd.errors import InvalidArgument

from . import common, decode, streams, views
from .fields import query_bool, query_int

routes = web.RouteTableDef()


@routes.post("/containers/create")
async def create(request):
    spec = decode.create_spec(await common.body(request), request.query.get("name"))
    c = await common.containers(request).create(spec)
    return web.json_response({"Id": c.id, "Warnings": []}, status=201)


@routes.get("/containers/json")
async def list_(request):
    svc = common.containers(request)
    filters = decode.filters(request.query.get("filters"), LIST_FILTERS)
    cs = svc.store.list(query_bool(request.query, "all"), filters)
    limit = query_int(request.query, "limit", -1, lo=-1)
    if limit > 0:
        cs = cs[:limit]
    return web.json_response([views.summary(c) for c in cs])


@routes.get("/containers/{id}/json")
async def inspect(request):
    svc = common.containers(request)
    c = svc.store.get(request.match_info["id"])
    return web.json_response(views.inspect(svc, c))


@routes.post("/containers/{id}/start")
async def start(request):
    started = await common.containers(request).start(request.match_info["id"])
    return web.Response(status=204 if started else 304)


@routes.post("/containers/{id}/stop")
async def stop(request):
    t = query_int(request.query, "t", lo=-1)
    stopped = await common.containers(request).stop(request.match_info["id"], t)
    return web.Response(status=204 if stopped else 304)


@routes.post("/containers/{id}/restart")
async def restart(request):
    t = query_int(request.query, "t", lo=-1)
    await common.containers(request).restart(request.match_info["id"], t)
    return web.Response(status=204)


@routes.post("/containers/{id}/kill")
async def kill(request):
    signal = request.query.get("signal") or "SIGKILL"
    await common.containers(request).kill(request.match_info["id"], signal)
    return web.Response(status=204)


@routes.post("/containers/{id}/pause")
async def pause(request):
    await common.containers(request).pause(request.match_info["id"])
    return web.Response(status=204)


@routes.post("/containers/{id}/unpause")
async def unpause(request):
    await common.containers(request).unpause(request.match_info["id"])
    return web.Response(status=204)


@routes.post("/containers/{id}/rename")
async def rename(request):
    await common.containers(request).rename(request.match_info["id"], request.query.get("name"))
    return web.Response(status=204)


@routes.post("/containers/{id}/update")
async def update(request):
    spec = decode.update_spec(await common.body(request))
    warnings = await common.containers(request).update(request.match_info["id"], spec)
    return web.json_response({"Warnings": warnings})


@routes.delete("/containers/{id}")
async def remove(request):
    if query_bool(request.query, "link"):
        raise InvalidArgument("removing links is not supported (links are resolved by name)")
    force, volumes = query_bool(request.query, "force"), query_bool(request.query, "v")
    await common.containers(request).remove(request.match_info["id"], force, volumes)
    return web.Response(status=204)


@routes.post("/containers/prune")
async def prune(request):
    f = decode.filters(request.query.get("filters"), {"label", "until"})
    until = None
    if f.get("until"):
        until = decode.timestamp({"until": f["until"][0]}, "until")
    removed, freed = await common.containers(request).prune(f.get("label", []), until)
    return web.json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": freed})


@routes.post("/containers/{id}/wait")
async def wait(request):
    """Docker's wait: headers at once (the docker CLI waits before it starts a container),
    the body when the condition is met."""
    condition = request.query.get("condition") or "not-running"
    if condition not in CONDITIONS:
        raise InvalidArgument(f"invalid condition {condition!r} (one of {', '.join(CONDITIONS)})")
    waiting = common.containers(request).wait(request.match_info["id"], condition)
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    try:
        await resp.prepare(request)
        status = await waiting
    finally:
        waiting.cancel()
    error = {"Message": status.error} if status.error else None
    with contextlib.suppress(ConnectionError):
        await resp.write(json.dumps({"StatusCode": status.exit_code, "Error": error}).encode())
        await resp.write_eof()
    return resp


@routes.post("/containers/{id}/resize")
async def resize(request):
    h = query_int(request.query, "h", 0, lo=0)
    w = query_int(request.query, "w", 0, lo=0)
    await common.containers(request).resize(request.match_info["id"], h, w)
    return web.Response(status=200)


@routes.get("/containers/{id}/logs")
async def logs(request):
    svc = common.containers(request)
    c = svc.store.get(request.match_info["id"])
    q = request.query
    want = {s for s in ("stdout", "stderr") if query_bool(q, s)}
    if not want:
        raise InvalidArgument("you must choose at least one stream (stdout, stderr)")
    if c.host.log_config.type == "none":
        raise InvalidArgument('configured logging driver does not support reading ("none")')
    tail_arg = q.get("tail", "all")
    tail = None if tail_arg in ("all", "") else query_int(q, "tail", lo=0)
    since = decode.timestamp(q, "since") or 0.0
    until = decode.timestamp(q, "until")
    timestamps = query_bool(q, "timestamps")
    records = svc.logs(c, tail=tail, since=since, until=until, follow=query_bool(q, "follow"))
    resp = web.StreamResponse(headers={"Content-Type": streams.content_type(c.config.tty)})
    await resp.prepare(request)
    async for t, stream, data in records:
        if stream not in want:
            continue
        if timestamps:
            data = t.encode() + b" " + data
        try:
            await resp.write(data if c.config.tty else streams.frame(stream, data))
        except ConnectionError:
            break
    return resp


@routes.post("/containers/{id}/attach")
async def attach(request):
    svc = common.containers(request)
    c = svc.store.get(request.match_info["id"])
    svc.check_responsive(c)
    q = request.query
    output = svc.io(c).output
    queue = output.subscribe() if query_bool(q, "stream") or not query_bool(q, "logs") else None
    conn = await streams.hijack(request, c.config.tty)
    want = {s for s in ("stdout", "stderr") if query_bool(q, s, True)}

    async def pump_stdin():
        agent = await svc.running_agent(c)
        while (chunk := await conn.read()) is not None:
            if agent is not None:
                await agent.write_stdin(c.stdio_seq, chunk)
        if c.config.stdin_once and agent is not None:
            with contextlib.suppress(Exception):
                await agent.close_stdin(c.stdio_seq)

    async def pump_out():
        if query_bool(q, "logs"):
            async for _, stream, data in svc.logs(c):
                if stream in want and not await conn.write(
                    data if c.config.tty else streams.frame(stream, data)
                ):
                    return
        if queue is None:
            return
        try:
            while (item := await queue.get()) is not None:
                stream, data = item
                if stream in want and not await conn.write(
                    data if c.config.tty else streams.frame(stream, data)
                ):
                    return
        finally:
            output.unsubscribe(queue)

    stdin = pump_stdin() if query_bool(q, "stdin") else None
    return await streams.serve(conn, pump_out(), stdin)


@routes.get("/containers/{id}/top")
async def top(request):
    svc = common.containers(request)
    c = svc.store.get(request.match_info["id"])
    procs = await svc.processes(c)
    return web.json_response(views.top(procs, request.query.get("ps_args", "")))


@routes.get("/containers/{id}/stats")
async def stats(request):
    svc = common.containers(request)
    c = svc.store.get(request.match_info["id"])
    stream = query_bool(request.query, "stream", True)
    one_shot = query_bool(request.query, "one-shot")

    async def samples():
        previous = None
        while True:
            sample = await svc.stats(c)
            if previous is None and not one_shot and not stream:
                previous = sample
                await asyncio.sleep(1)
                continue
            yield views.stats(c, sample, previous)
            if not stream:
                return
            previous = sample
            await asyncio.sleep(1)

    if not stream:
        return web.json_response([item async for item in samples()][0])
    return await common.json_lines(request, samples())
