"""Image endpoints: pull, import, list, inspect, history, tag, push, remove, save, load."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import tempfile
from pathlib import Path

from aiohttp import web

from hyperd.containers.state import parse_rfc3339
from hyperd.errors import InvalidArgument
from hyperd.images import importer
from hyperd.images.errors import InvalidReference
from hyperd.images.filters import LIST_FILTERS, PRUNE_FILTERS, Matcher, created
from hyperd.images.manifest import parse_platform
from hyperd.images.reference import is_image_id, parse_reference

from . import common, decode
from .fields import query_bool

routes = web.RouteTableDef()


@routes.post("/images/create")
async def image_pull(request):
    if request.query.get("fromSrc"):
        return await image_import(request)
    ref = request.query.get("fromImage")
    if not ref:
        raise InvalidArgument("fromImage or fromSrc is required")
    tag = request.query.get("tag")
    if tag:
        ref = f"{ref}@{tag}" if tag.startswith("sha256:") else f"{ref}:{tag}"
    platform_ = request.query.get("platform") or None
    images = common.images(request)
    return await common.in_thread_streaming(
        request, lambda progress: images.pull(ref, platform_, progress)
    )


async def image_import(request):
    """``docker import``: the body (fromSrc=-) or a loopback URL as a one-layer image."""
    q = request.query
    images = common.images(request)
    src = q["fromSrc"]
    if q.get("platform"):
        parse_platform(q["platform"])
    repo, tag = q.get("repo", ""), q.get("tag", "")
    names = [f"{repo}:{tag}" if tag else repo] if repo else []
    for name in names:
        parse_reference(name)
    if src != "-":
        importer.check_url(src)
    fd, path = tempfile.mkstemp(dir=images.store.ingest_dir, suffix=".tar")
    try:
        with os.fdopen(fd, "wb") as f:
            if src == "-":
                async for chunk in request.content.iter_chunked(1 << 20):
                    f.write(chunk)

        def work(progress):
            if src != "-":
                importer.fetch(src, Path(path), progress)
            rec = importer.import_tarball(
                images, Path(path), source=src, names=names, message=q.get("message", ""),
                changes=q.getall("changes", []),
            )  # fmt: skip
            progress({"status": rec.id})

        return await common.in_thread_streaming(request, work)
    finally:
        os.unlink(path)


def _hidden(rec, children: set[str]) -> bool:
    """Docker's ``images`` (without all=1) leaves out unnamed parents: build steps."""
    return not rec.tags and not rec.digests and rec.id in children


@routes.get("/images/json")
async def image_list(request):
    images = common.images(request)
    match = _matcher(request, LIST_FILTERS)
    out = []
    records = await asyncio.to_thread(images.list)
    children = set()
    if not query_bool(request.query, "all"):
        parents = await asyncio.to_thread(lambda: [images.index.parent(r.id) for r in records])
        children = {p for p in parents if p}
    for rec in records:
        if _hidden(rec, children):
            continue
        data = await asyncio.to_thread(images.inspect, rec.id)
        if not match(rec, data):
            continue
        out.append(
            {
                "Id": data["Id"],
                "RepoTags": [_familiar(t) for t in match.tags(rec)],
                "RepoDigests": data.get("RepoDigests") or [],
                "Created": int(rec.added if not data.get("Created") else _unix(data["Created"])),
                "Size": data.get("Size", 0),
                "Labels": (data.get("Config") or {}).get("Labels") or {},
            }
        )
    return web.json_response(out)


def _matcher(request, allowed: set[str]) -> Matcher:
    images = common.images(request)
    f = decode.filters(request.query.get("filters"), allowed)
    return Matcher(f, lambda ref: created(images.inspect(ref)))


@routes.post("/images/prune")
async def image_prune(request):
    images = common.images(request)
    match = _matcher(request, PRUNE_FILTERS)
    # as Docker: untagged images only, unless dangling=false asks for every unused one
    match.dangling = True if match.dangling is None or match.dangling else None
    deleted, freed = await asyncio.to_thread(images.prune, match)
    common.events(request).publish("image", "prune", "", reclaimed=freed)
    return web.json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": freed})


def _familiar(name: str) -> str:
    """Docker's short form of an image name (busybox:latest), IDs as they are."""
    try:
        return parse_reference(name).familiar()
    except InvalidReference:
        return name


def _unix(text: str) -> float:
    try:
        return parse_rfc3339(text[:19] + "Z" if "." not in text else text.split("+")[0])
    except ValueError:
        return 0.0


@routes.get("/images/get")
async def images_save(request):
    names = request.query.getall("names", [])
    if not names:
        raise InvalidArgument("names is required")
    return await _save(request, names)


@routes.get(r"/images/{name:.+}/get")
async def image_save(request):
    return await _save(request, [request.match_info["name"]])


async def _save(request, names: list[str]) -> web.StreamResponse:
    with tempfile.TemporaryDirectory(dir=common.images(request).root) as tmp:
        path = os.path.join(tmp, "save.tar")
        await asyncio.to_thread(common.images(request).save, names, path)
        resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        await resp.prepare(request)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                await resp.write(chunk)
        await resp.write_eof()
        return resp


@routes.post("/images/load")
async def image_load(request):
    images = common.images(request)
    fd, path = tempfile.mkstemp(dir=images.root, suffix=".tar")
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.content.iter_chunked(1 << 20):
                f.write(chunk)

        def work(progress):
            for name in images.load(path):
                if is_image_id(name):
                    progress({"stream": f"Loaded image ID: {name}\n"})
                else:
                    progress({"stream": f"Loaded image: {_familiar(name)}\n"})

        return await common.in_thread_streaming(request, work)
    finally:
        os.unlink(path)


@routes.get(r"/images/{name:.+}/history")
async def image_history(request):
    data = await asyncio.to_thread(common.images(request).history, request.match_info["name"])
    return web.json_response(data)


@routes.post(r"/images/{name:.+}/push")
async def image_push(request):
    images = common.images(request)
    name, tag = request.match_info["name"], request.query.get("tag") or None
    credentials = registry_auth(request.headers.get("X-Registry-Auth", ""))
    return await common.in_thread_streaming(
        request, lambda progress: images.push(name, tag, progress, credentials)
    )


def registry_auth(header: str) -> tuple[str, str] | None:
    """The (user, password) of Docker's X-Registry-Auth header (base64url JSON), if any."""
    if not header:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidArgument("X-Registry-Auth is not base64-encoded JSON") from None
    if not isinstance(data, dict) or not data.get("username"):
        return None
    return str(data["username"]), str(data.get("password") or "")


@routes.get(r"/images/{name:.+}/json")
async def image_inspect(request):
    data = await asyncio.to_thread(common.images(request).inspect, request.match_info["name"])
    return web.json_response(data)


@routes.post(r"/images/{name:.+}/tag")
async def image_tag(request):
    repo = request.query.get("repo")
    if not repo:
        raise InvalidArgument("repo is required")
    tag = request.query.get("tag")
    target = f"{repo}:{tag}" if tag else repo
    await asyncio.to_thread(common.images(request).tag, request.match_info["name"], target)
    return web.Response(status=201)


@routes.delete(r"/images/{name:.+}")
async def image_remove(request):
    images = common.images(request)
    name, force = request.match_info["name"], query_bool(request.query, "force")
    return web.json_response(await asyncio.to_thread(images.remove, name, force))
