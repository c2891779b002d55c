"""``docker build``: POST /build (a context tar in, Docker's JSON stream out) and
POST /build/prune."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

from aiohttp import web

from hyperd.errors import HyperError, InvalidArgument
from hyperd.images.build.builder import Builder, BuildOptions, check_platform
from hyperd.images.build.cache import prune as prune_cache
from hyperd.images.build.context import BuildContext, unpack
from hyperd.images.build.copy import is_archive
from hyperd.images.build.run import BuildError, Runner, RunOptions
from hyperd.images.reference import parse_reference

from . import common
from .decode import MIN_MEMORY
from .fields import query_bool, query_int

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
CHUNK = 1 << 20


def _json_param(query, key: str, kind: type, what: str):
    text = query.get(key)
    if not text:
        return kind()
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"{key} must be JSON ({what})") from None
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise InvalidArgument(f"{key} must be {what}")
    return value


def _extra_hosts(query) -> list[str]:
    out = []
    for value in query.getall("extrahosts", []):
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            host, sep, ip = item.partition(":")
            if not sep or not host or not ip:
                raise InvalidArgument(f"extrahosts: invalid entry {item!r} (HOST:IP)")
            out.append(item)
    return out


def decode(query) -> tuple[BuildOptions, RunOptions]:
    """The build options of a /build query; a 400 for a malformed one."""
    if query.get("remote"):
        raise InvalidArgument(
            "remote build contexts are not supported (hyperd reaches no network): "
            "send the context as the request body"
        )
    tags = [t for t in query.getall("t", []) if t]
    for tag in tags:
        ref = parse_reference(tag)
        if ref.digest:
            raise InvalidArgument(f"invalid tag {tag!r}: a build cannot be tagged with a digest")
    buildargs = _json_param(query, "buildargs", dict, "an object of strings")
    labels = _json_param(query, "labels", dict, "an object of strings")
    cache_from = _json_param(query, "cachefrom", list, "a list of image names")
    for k, v in [*buildargs.items(), *labels.items()]:
        if not isinstance(k, str) or not (v is None or isinstance(v, str)):
            raise InvalidArgument("buildargs and labels must map strings to strings")
    if query.get("platform"):
        check_platform(query["platform"])
    options = BuildOptions(
        dockerfile=query.get("dockerfile") or "",
        tags=tags,
        quiet=query_bool(query, "q"),
        nocache=query_bool(query, "nocache"),
        pull=query_bool(query, "pull"),
        buildargs=buildargs,
        labels={k: v or "" for k, v in labels.items()},
        target=query.get("target") or "",
        cache_from=[str(x) for x in cache_from],
        platform=query.get("platform") or "",
        squash=query_bool(query, "squash"),
    )
    memory = query_int(query, "memory", 0, lo=0)
    if memory and memory < MIN_MEMORY:
        raise InvalidArgument("memory: minimum memory limit allowed is 64MB")
    run = RunOptions(
        network_mode=query.get("networkmode") or "default",
        extra_hosts=_extra_hosts(query),
        shm_size=query_int(query, "shmsize", 0, lo=0),
        memory=memory,
        rm=query_bool(query, "rm", True),
        forcerm=query_bool(query, "forcerm"),
    )
    return options, run


def _error(exc: BaseException) -> dict:
    if isinstance(exc, BuildError) and exc.code:
        detail = {"code": exc.code, "message": exc.message}
        return {"errorDetail": detail, "error": exc.message}
    message = exc.message if isinstance(exc, HyperError) else f"internal error: {exc}"
    return {"errorDetail": {"message": message}, "error": message}


@routes.post("/build")
async def build(request):
    options, run_options = decode(request.query)
    images, containers = common.images(request), common.containers(request)
    workdir = Path(tempfile.mkdtemp(dir=images.store.ingest_dir, prefix="build-"))
    try:
        tar = workdir / "context.tar"
        with open(tar, "wb") as f:
            async for chunk in request.content.iter_chunked(CHUNK):
                f.write(chunk)
        root = workdir / "context"
        root.mkdir()
        if tar.stat().st_size and not is_archive(tar):
            tar.rename(root / "Dockerfile")  # a bare Dockerfile as the body, as Docker takes it
        else:
            await asyncio.to_thread(unpack, tar, root)
            tar.unlink()
        queue: asyncio.Queue = asyncio.Queue()
        runner = Runner(containers, images, run_options, queue.put_nowait)
        builder = Builder(images, runner, BuildContext(root), options, queue.put_nowait, workdir)
        task = asyncio.create_task(_run(builder, queue))

        async def items():
            while (event := await queue.get()) is not None:
                yield event

        try:
            return await common.json_lines(request, items())
        finally:
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)


async def _run(builder: Builder, queue: asyncio.Queue) -> None:
    try:
        await builder.build()
    except HyperError as exc:
        queue.put_nowait(_error(exc))
    except Exception as exc:  # noqa: BLE001 - reported in the stream; the daemon lives on
        log.exception("build failed")
        queue.put_nowait(_error(exc))
    finally:
        queue.put_nowait(None)


@routes.post("/build/prune")
async def prune(request):
    removed, freed = await asyncio.to_thread(prune_cache, common.images(request))
    return web.json_response({"CachesDeleted": removed or None, "SpaceReclaimed": freed})
