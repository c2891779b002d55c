"""A container's changes: ``docker commit``, ``docker diff`` and ``docker export``."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

from aiohttp import web

from hyperd.containers import snapshot
from hyperd.errors import InvalidArgument
from hyperd.images.build.metadata import apply_changes
from hyperd.images.commit import NewImage, commit_changes, lower_tree
from hyperd.images.export import export
from hyperd.images.layer import Changes
from hyperd.images.reference import parse_reference

from . import common
from .fields import Fields, query_bool

routes = web.RouteTableDef()
CHUNK = 1 << 20


def _names(repo: str, tag: str) -> list[str]:
    """The name a commit gets (checked before anything is copied)."""
    if not repo:
        if tag:
            raise InvalidArgument("a tag needs a repository (repo=) to name the image")
        return []
    name = f"{repo}:{tag}" if tag else repo
    if parse_reference(name).digest:
        raise InvalidArgument(f"cannot name a commit with a digest: {name!r}")
    return [name]


def _body_config(body: dict) -> dict:
    """The config a ``/commit`` body gives (Docker's container Config), checked."""
    f = Fields(body)
    out: dict = {}
    for key in ("Cmd", "Entrypoint"):
        if f.has(key):
            out[key] = f.command(key)
    for key in ("Env", "OnBuild"):
        if f.has(key):
            out[key] = f.str_list(key)
    for key in ("User", "WorkingDir", "StopSignal"):
        if f.has(key):
            out[key] = f.str(key)
    if f.has("Labels"):
        out["Labels"] = f.str_map("Labels")
    for key in ("ExposedPorts", "Volumes"):
        if f.has(key):
            out[key] = {k: {} for k in f.keys(key)}
    return out


@routes.post("/commit")
async def commit(request):
    q = request.query
    svc, images = common.containers(request), common.images(request)
    c = svc.store.get(q.get("container") or "")
    names = _names(q.get("repo", ""), q.get("tag", ""))
    base = (await asyncio.to_thread(images.full_config, c.image_id)).get("config") or {}
    config = snapshot.image_config(c, base)
    config.update(_body_config(await common.body(request)))
    apply_changes(config, q.getall("changes", []))
    new = NewImage(
        config,
        created_by=snapshot.created_by(c),
        comment=q.get("comment", ""),
        author=q.get("author", ""),
        top={"container": c.id},
    )
    parent = await asyncio.to_thread(images.resolve, c.image_id)
    pause = query_bool(q, "pause", True)
    async with snapshot.changes_tar(svc, c, images.store.ingest_dir, pause) as tar:
        rec = await asyncio.to_thread(commit_changes, images, parent, tar, new, names)
    attrs = {"comment": new.comment, "imageID": rec.id, "imageRef": names[0] if names else ""}
    svc.events.publish("container", "commit", c.id, **svc.event_attrs(c), **attrs)
    return web.json_response({"Id": rec.id}, status=201)


@contextlib.asynccontextmanager
async def _changes(request):
    svc, images = common.containers(request), common.images(request)
    c = svc.store.get(request.match_info["id"])
    parent = await asyncio.to_thread(images.resolve, c.image_id)
    async with snapshot.changes_tar(svc, c, images.store.ingest_dir) as tar:
        lower = await asyncio.to_thread(lower_tree, images, parent)
        yield parent, await asyncio.to_thread(Changes, tar, lower)


@routes.get("/containers/{id}/changes")
async def diff(request):
    async with _changes(request) as (_parent, changes):
        return web.json_response(changes.diff())


@routes.get("/containers/{id}/export")
async def export_(request):
    images = common.images(request)
    with tempfile.TemporaryDirectory(dir=images.store.ingest_dir) as tmp:
        out = Path(tmp) / "export.tar"
        async with _changes(request) as (parent, changes):
            await asyncio.to_thread(export, images, parent, changes, out)
        resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        await resp.prepare(request)
        with open(out, "rb") as f:
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                await resp.write(chunk)
        await resp.write_eof()
        return resp
