"""Routes of the hyperd API (docs/api.md); handlers translate HTTP <-> manager calls."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import tempfile
from collections.abc import Callable

from aiohttp import web

from hyperd import __version__
from hyperd.containers.manager import ContainerManager
from hyperd.containers.model import parse_rfc3339
from hyperd.errors import HyperError, InvalidArgument
from hyperd.images.errors import InvalidReference
from hyperd.images.reference import parse_reference
from hyperd.images.service import ImageService

from . import streams, views

log = logging.getLogger(__name__)
API_VERSION = "1.41"
MIN_API_VERSION = "1.24"

routes = web.RouteTableDef()


# -- plumbing ------------------------------------------------------------------------------


@web.middleware
async def errors(request: web.Request, handler):
    """HyperErrors become Docker error bodies; anything else is a logged 500."""
    try:
        return await handler(request)
    except HyperError as exc:
        return web.json_response({"message": exc.message}, status=exc.status)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return web.json_response({"message": "internal error (see hyperd's log)"}, status=500)


def _manager(request) -> ContainerManager:
    return request.app["manager"]


def _images(request) -> ImageService:
    return request.app["images"]


def _flag(request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    return value.lower() in ("1", "true", "yes")


def _int(request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"{name} must be an integer, not {value!r}") from None


async def _json_body(request) -> dict:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"malformed JSON in request body: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be a JSON object")
    return body


async def _in_thread_streaming(request, work: Callable[[Callable[[dict], None]], None]):
    """Run blocking ``work(progress)`` in a thread, streaming its progress as JSON lines."""
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def progress(event: dict) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

    async def run():
        try:
            await asyncio.to_thread(work, progress)
        except HyperError as exc:
            await queue.put({"error": exc.message, "errorDetail": {"message": exc.message}})
        except Exception as exc:  # noqa: BLE001 - reported in-stream, never kills the daemon
            log.exception("streamed operation failed")
            await queue.put({"error": str(exc), "errorDetail": {"message": str(exc)}})
        await queue.put(None)

    task = asyncio.create_task(run())
    while (event := await queue.get()) is not None:
        with contextlib.suppress(ConnectionError):
            await resp.write(json.dumps(event).encode() + b"\r\n")
    await task
    return resp


# -- system --------------------------------------------------------------------------------


@routes.get("/_ping")
@routes.head("/_ping")
async def ping(request):
    return web.Response(text="OK", headers={"Api-Version": API_VERSION})


@routes.get("/version")
async def version(request):
    mgr = _manager(request)
    return web.json_response(
        {
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "Os": "linux",
            "Arch": "amd64",
            "KernelVersion": platform.release(),
            "GoVersion": "",
            "GitCommit": "",
            "Hyper": {"Accel": mgr.accel, "Kernel": mgr.assets.kernel, "Initrd": mgr.assets.initrd},
        }
    )


@routes.get("/info")
async def info(request):
    mgr = _manager(request)
    cs = list(mgr.containers.values())
    running = sum(1 for c in cs if c.running)
    return web.json_response(
        {
            "ID": "hyperd",
            "Containers": len(cs),
            "ContainersRunning": running,
            "ContainersPaused": 0,
            "ContainersStopped": len(cs) - running,
            "Images": len(_images(request).list()),
            "Driver": _images(request).rootfs_fstype,
            "DockerRootDir": mgr.config.root,
            "NCPU": os.cpu_count(),
            "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "OperatingSystem": _os_name(),
            "KernelVersion": platform.release(),
            "ServerVersion": __version__,
            "Name": platform.node(),
            "Hyper": {
                "Accel": mgr.accel,
                "DefaultCpus": mgr.config.cpus,
                "DefaultMemory": mgr.config.memory_bytes,
            },
        }
    )


def _os_name() -> str:
    with contextlib.suppress(OSError), open("/etc/os-release") as f:
        for line in f:
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


@routes.post("/auth")
async def auth(request):
    body = await _json_body(request)
    server = body.get("serveraddress") or "docker.io"
    await asyncio.to_thread(
        _images(request).login, server, body.get("username", ""), body.get("password", "")
    )
    return web.json_response({"Status": "Login Succeeded"})


@routes.post("/auth/logout")
async def logout(request):
    body = await _json_body(request)
    server = body.get("serveraddress") or "docker.io"
    if not await asyncio.to_thread(_images(request).logout, server):
        return web.json_response({"message": f"Not logged in to {server}"}, status=404)
    return web.json_response({"Status": f"Removing login credentials for {server}"})


# -- images --------------------------------------------------------------------------------


@routes.post("/images/create")
async def image_pull(request):
    ref = request.query.get("fromImage")
    if not ref:
        raise InvalidArgument("fromImage is required (image import is not supported)")
    tag = request.query.get("tag")
    if tag:
        ref = f"{ref}@{tag}" if tag.startswith("sha256:") else f"{ref}:{tag}"
    platform_ = request.query.get("platform") or None
    images = _images(request)
    return await _in_thread_streaming(
        request, lambda progress: images.pull(ref, platform_, progress)
    )


@routes.get("/images/json")
async def image_list(request):
    out = []
    for rec in await asyncio.to_thread(_images(request).list):
        data = await asyncio.to_thread(_images(request).inspect, rec.id)
        out.append(
            {
                "Id": data["Id"],
                "RepoTags": data.get("RepoTags") or [],
                "RepoDigests": data.get("RepoDigests") or [],
                "Created": int(rec.added if not data.get("Created") else _unix(data["Created"])),
                "Size": data.get("Size", 0),
                "Labels": (data.get("Config") or {}).get("Labels") or {},
            }
        )
    return web.json_response(out)


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
async def image_save(request):
    names = request.query.getall("names", [])
    if not names:
        raise InvalidArgument("names is required")
    with tempfile.TemporaryDirectory(dir=_images(request).root) as tmp:
        path = os.path.join(tmp, "save.tar")
        await asyncio.to_thread(_images(request).save, names, path)
        resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        await resp.prepare(request)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                await resp.write(chunk)
        await resp.write_eof()
        return resp


@routes.post("/images/load")
async def image_load(request):
    images = _images(request)
    fd, path = tempfile.mkstemp(dir=images.root, suffix=".tar")
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.content.iter_chunked(1 << 20):
                f.write(chunk)

        def work(progress):
            for name in images.load(path):
                progress({"stream": f"Loaded image: {_familiar(name)}\n"})

        return await _in_thread_streaming(request, work)
    finally:
        os.unlink(path)


@routes.get(r"/images/{name:.+}/json")
async def image_inspect(request):
    data = await asyncio.to_thread(_images(request).inspect, request.match_info["name"])
    return web.json_response(data)


@routes.post(r"/images/{name:.+}/tag")
async def image_tag(request):
    repo = request.query.get("repo")
    if not repo:
        raise InvalidArgument("repo is required")
    tag = request.query.get("tag")
    target = f"{repo}:{tag}" if tag else repo
    await asyncio.to_thread(_images(request).tag, request.match_info["name"], target)
    return web.Response(status=201)


@routes.delete(r"/images/{name:.+}")
async def image_remove(request):
    images = _images(request)
    name, force = request.match_info["name"], _flag(request, "force")
    return web.json_response(await asyncio.to_thread(images.remove, name, force))


# -- containers ----------------------------------------------------------------------------


@routes.post("/containers/create")
async def container_create(request):
    body = await _json_body(request)
    c = await _manager(request).create(body, request.query.get("name"))
    return web.json_response({"Id": c.id, "Warnings": []}, status=201)


@routes.get("/containers/json")
async def container_list(request):
    filters = {}
    if request.query.get("filters"):
        try:
            filters = json.loads(request.query["filters"])
        except json.JSONDecodeError:
            raise InvalidArgument("filters must be JSON") from None
        if not isinstance(filters, dict):
            raise InvalidArgument("filters must be a JSON object")
        # Docker accepts {"status": {"exited": true}} as well as lists
        filters = {k: list(v) if isinstance(v, dict | list) else [v] for k, v in filters.items()}
    cs = _manager(request).list(_flag(request, "all"), filters)
    return web.json_response([views.summary(c) for c in cs])


@routes.get("/containers/{id}/json")
async def container_inspect(request):
    mgr = _manager(request)
    c = mgr.get(request.match_info["id"])
    return web.json_response(
        views.inspect(c, mgr.accel, str(mgr.log_path(c)), str(mgr.console_path(c)))
    )


@routes.post("/containers/{id}/start")
async def container_start(request):
    started = await _manager(request).start(request.match_info["id"])
    return web.Response(status=204 if started else 304)


@routes.post("/containers/{id}/stop")
async def container_stop(request):
    stopped = await _manager(request).stop(request.match_info["id"], _int(request, "t"))
    return web.Response(status=204 if stopped else 304)


@routes.post("/containers/{id}/restart")
async def container_restart(request):
    await _manager(request).restart(request.match_info["id"], _int(request, "t"))
    return web.Response(status=204)


@routes.post("/containers/{id}/kill")
async def container_kill(request):
    await _manager(request).kill(request.match_info["id"], request.query.get("signal", "SIGKILL"))
    return web.Response(status=204)


@routes.delete("/containers/{id}")
async def container_remove(request):
    await _manager(request).remove(request.match_info["id"], _flag(request, "force"))
    return web.Response(status=204)


@routes.post("/containers/{id}/wait")
async def container_wait(request):
    code = await _manager(request).wait(
        request.match_info["id"], request.query.get("condition", "not-running")
    )
    return web.json_response({"StatusCode": code, "Error": None})


@routes.post("/containers/{id}/resize")
async def container_resize(request):
    h, w = _int(request, "h", 0), _int(request, "w", 0)
    await _manager(request).resize(request.match_info["id"], h, w)
    return web.Response(status=200)


@routes.get("/containers/{id}/logs")
async def container_logs(request):
    mgr = _manager(request)
    c = mgr.get(request.match_info["id"])
    want = {s for s in ("stdout", "stderr") if _flag(request, s)}
    if not want:
        raise InvalidArgument("you must choose at least one stream (stdout, stderr)")
    tail_arg = request.query.get("tail", "all")
    tail = None if tail_arg in ("all", "") else _int(request, "tail")
    since = float(request.query.get("since") or 0)
    timestamps = _flag(request, "timestamps")
    records = mgr.logs(c.id, tail=tail, since=since, follow=_flag(request, "follow"))
    ctype = streams.RAW if c.tty else streams.MULTIPLEXED
    resp = web.StreamResponse(headers={"Content-Type": ctype})
    await resp.prepare(request)
    async for t, stream, data in records:
        if stream not in want:
            continue
        if timestamps:
            data = t.encode() + b" " + data
        try:
            await resp.write(data if c.tty else streams.frame(stream, data))
        except ConnectionError:
            break
    return resp


@routes.post("/containers/{id}/attach")
async def container_attach(request):
    mgr = _manager(request)
    c, output = mgr.output(request.match_info["id"])
    queue = output.subscribe()
    conn = await streams.hijack(request, c.tty)
    want = {s for s in ("stdout", "stderr") if _flag(request, s, True)}

    async def pump_stdin():
        while (chunk := await conn.read()) is not None:
            await mgr.write_stdin(c, chunk)
        if c.stdin_once:
            await mgr.close_stdin(c)

    async def pump_out():
        try:
            while (item := await queue.get()) is not None:
                stream, data = item
                if stream in want and not await conn.write(
                    data if c.tty else streams.frame(stream, data)
                ):
                    return
        finally:
            output.unsubscribe(queue)

    return await _serve(conn, pump_out(), pump_stdin() if _flag(request, "stdin") else None)


async def _serve(conn: streams.Hijacked, output, stdin=None) -> web.StreamResponse:
    """Pump a hijacked connection: stdin in the background until the output is done."""
    stdin_task = asyncio.create_task(stdin) if stdin is not None else None
    try:
        await output
    finally:
        if stdin_task:
            stdin_task.cancel()
        await conn.close()
    return conn.response


# -- exec ----------------------------------------------------------------------------------


@routes.post("/containers/{id}/exec")
async def exec_create(request):
    body = await _json_body(request)
    ex = _manager(request).exec_create(request.match_info["id"], body)
    return web.json_response({"Id": ex.id}, status=201)


@routes.post("/exec/{id}/start")
async def exec_start(request):
    body = await _json_body(request)
    mgr = _manager(request)
    ex = mgr.get_exec(request.match_info["id"])
    size = body.get("ConsoleSize")
    if isinstance(size, list) and len(size) == 2:
        ex.size = (int(size[0]), int(size[1]))
    if body.get("Detach"):
        await mgr.exec_start(ex.id, body.get("Tty"))
        return web.Response(status=200)
    await mgr.exec_start(ex.id, body.get("Tty"))
    conn = await streams.hijack(request, ex.tty)
    agent = mgr.runtimes[ex.container].agent

    async def pump_stdin():
        while (chunk := await conn.read()) is not None:
            await agent.write_stdin(ex.io.stdio, chunk)
        await agent.close_stdin(ex.io.stdio)

    async def pump_out(stream_obj, name):
        async for chunk in stream_obj.chunks():
            if not await conn.write(chunk if ex.tty else streams.frame(name, chunk)):
                return

    async def outputs():
        outs = [pump_out(ex.io.stdout_stream, "stdout")]
        if ex.io.stderr_stream is not None:
            outs.append(pump_out(ex.io.stderr_stream, "stderr"))
        await asyncio.gather(*outs)
        # Docker ends the stream when the process has exited, so an inspect right after
        # it sees the exit code; the exit event trails the output's EOF.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(ex.io.exited), 10)

    return await _serve(conn, outputs(), pump_stdin() if ex.attach_stdin else None)


@routes.post("/exec/{id}/resize")
async def exec_resize(request):
    await _manager(request).exec_resize(
        request.match_info["id"], _int(request, "h", 0), _int(request, "w", 0)
    )
    return web.Response(status=200)


@routes.get("/exec/{id}/json")
async def exec_inspect(request):
    ex = _manager(request).get_exec(request.match_info["id"])
    return web.json_response(
        {
            "ID": ex.id,
            "ContainerID": ex.container,
            "Running": ex.running,
            "ExitCode": ex.exit_code,
            "OpenStdin": ex.attach_stdin,
            "Pid": 0,
            "ProcessConfig": {
                "entrypoint": ex.args[0],
                "arguments": ex.args[1:],
                "tty": ex.tty,
                "user": ex.user,
            },
        }
    )


# -- app -----------------------------------------------------------------------------------


def make_app(manager: ContainerManager, images: ImageService) -> web.Application:
    """The aiohttp application; each route is also served under Docker's /v1.NN prefix."""
    app = web.Application(middlewares=[errors], client_max_size=1 << 20)
    app["manager"] = manager
    app["images"] = images
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
        app.router.add_route(route.method, r"/{_api:v[0-9]+\.[0-9]+}" + route.path, route.handler)
    return app
