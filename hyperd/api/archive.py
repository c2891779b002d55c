"""A container's files: Docker's archive endpoints (``docker cp``)."""

from __future__ import annotations

import base64
import json

from aiohttp import web

from . import common
from .fields import query_bool

routes = web.RouteTableDef()
STAT_HEADER = "X-Docker-Container-Path-Stat"
TAR = "application/x-tar"
CHUNK = 1 << 16


def _stat_header(info) -> dict[str, str]:
    return {STAT_HEADER: base64.b64encode(json.dumps(info.to_json()).encode()).decode()}


@routes.head("/containers/{id}/archive")
async def stat(request):
    svc = common.containers(request)
    c = svc.store.get(request.match_info["id"])
    info = await svc.files.stat(c, request.query.get("path", ""))
    return web.Response(status=200, headers=_stat_header(info))


@routes.get("/containers/{id}/archive")
async def get(request):
    svc = common.containers(request)
    c = svc.store.get(request.match_info["id"])
    async with svc.files.archive(c, request.query.get("path", "")) as (info, chunks):
        resp = web.StreamResponse(headers={"Content-Type": TAR, **_stat_header(info)})
        await resp.prepare(request)
        async for chunk in chunks:
            await resp.write(chunk)
        await resp.write_eof()
        return resp


@routes.put("/containers/{id}/archive")
async def put(request):
    svc = common.containers(request)
    c = svc.store.get(request.match_info["id"])
    no_overwrite = query_bool(request.query, "noOverwriteDirNonDir")
    chunks = request.content.iter_chunked(CHUNK)
    await svc.files.extract(c, request.query.get("path", ""), chunks, no_overwrite)
    return web.Response(status=200)
