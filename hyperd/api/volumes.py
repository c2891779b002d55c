"""Volume endpoints: create, list, inspect, remove, prune."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from hyperd.containers import volumes as volume_ops
from hyperd.errors import InvalidArgument, NotFound
from hyperd.volumes import Volume
from hyperd.volumes.store import DRIVER, FILTERS

from . import common, decode
from .fields import Fields, query_bool
from .mounts import check_volume_name

routes = web.RouteTableDef()


def view(svc, v: Volume) -> dict:
    """Docker's volume shape; Mountpoint is the disk image the VM gets."""
    return {
        "Name": v.name,
        "Driver": DRIVER,
        "Mountpoint": str(svc.volumes.disk(v.name)),
        "CreatedAt": v.created,
        "Labels": v.labels or None,
        "Scope": "local",
        "Options": v.options or None,
    }


@routes.post("/volumes/create")
async def create(request):
    f = Fields(await common.body(request))
    name = f.str("Name")
    if name:
        check_volume_name(name)
    driver = f.str("Driver") or DRIVER
    if driver != DRIVER:
        raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
    svc = common.containers(request)
    vol = await asyncio.to_thread(
        svc.volumes.create, name, f.str_map("Labels"), f.str_map("DriverOpts")
    )
    common.events(request).publish("volume", "create", vol.name, driver=DRIVER)
    return web.json_response(view(svc, vol), status=201)


@routes.get("/volumes")
async def list_(request):
    svc = common.containers(request)
    filters = decode.filters(request.query.get("filters"), FILTERS)
    vols = await asyncio.to_thread(svc.volumes.list, filters, lambda n: bool(svc.volume_users(n)))
    return web.json_response({"Volumes": [view(svc, v) for v in vols], "Warnings": []})


@routes.get("/volumes/{name}")
async def inspect(request):
    svc = common.containers(request)
    vol = await asyncio.to_thread(svc.volumes.get, request.match_info["name"])
    return web.json_response(view(svc, vol))


@routes.delete("/volumes/{name}")
async def remove(request):
    svc = common.containers(request)
    name = request.match_info["name"]
    try:
        await asyncio.to_thread(svc.volumes.remove, name, svc.volume_users(name))
    except NotFound:
        if not query_bool(request.query, "force"):
            raise
    else:
        common.events(request).publish("volume", "destroy", name, driver=DRIVER)
    return web.Response(status=204)


@routes.post("/volumes/prune")
async def prune(request):
    svc = common.containers(request)
    f = decode.filters(request.query.get("filters"), {"label", "label!", "all"})
    if f.get("all", ["true"])[0] not in ("true", "1", "false", "0"):
        raise InvalidArgument("invalid filter 'all'")
    deleted, freed = [], 0
    for v in await asyncio.to_thread(svc.volumes.list, {}, lambda n: True):
        if svc.volume_users(v.name) or not _labels_match(v, f):
            continue
        size = svc.volumes.usage(v.name)
        await asyncio.to_thread(svc.volumes.remove, v.name, [])
        common.events(request).publish("volume", "destroy", v.name, driver=DRIVER)
        deleted.append(v.name)
        freed += size
    return web.json_response({"VolumesDeleted": deleted or None, "SpaceReclaimed": freed})


def _labels_match(v: Volume, f: dict[str, list[str]]) -> bool:
    for want in f.get("label", []):
        k, sep, val = want.partition("=")
        if k not in v.labels or (sep and v.labels[k] != val):
            return False
    for unwanted in f.get("label!", []):
        k, sep, val = unwanted.partition("=")
        if k in v.labels and (not sep or v.labels[k] == val):
            return False
    return True


# -- snapshots (a hyper extension) ---------------------------------------------------------


def snapshot_view(s) -> dict:
    return {"Name": s.name, "Volume": s.volume, "CreatedAt": s.created, "Size": s.size}


@routes.post("/volumes/{name}/snapshot")
async def snapshot(request):
    svc = common.containers(request)
    volume = request.match_info["name"]
    await asyncio.to_thread(svc.volumes.get, volume)
    name = request.query.get("name") or f"{volume}-{int(time.time())}"
    check_volume_name(name, "snapshot name")
    snap = await volume_ops.snapshot(svc, volume, name)
    common.events(request).publish("volume", "snapshot", volume, snapshot=name)
    return web.json_response(snapshot_view(snap), status=201)


@routes.get("/snapshots")
async def snapshots(request):
    svc = common.containers(request)
    items = await asyncio.to_thread(svc.volumes.snapshots.list, request.query.get("volume", ""))
    return web.json_response([snapshot_view(s) for s in items])


@routes.delete("/snapshots/{name}")
async def remove_snapshot(request):
    svc = common.containers(request)
    await asyncio.to_thread(svc.volumes.snapshots.remove, request.match_info["name"])
    return web.Response(status=204)
