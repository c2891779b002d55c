"""System endpoints: ping, version, info, events, disk usage, registry login."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import time

from aiohttp import web

from hyperd import __version__
from hyperd.containers.state import now_rfc3339
from hyperd.errors import Unavailable
from hyperd.events import FILTERS as EVENT_FILTERS

from . import common, decode, views

routes = web.RouteTableDef()
API_VERSION = "1.41"
MIN_API_VERSION = "1.24"


@routes.get("/_ping")
@routes.head("/_ping")
async def ping(request):
    headers = {"Api-Version": API_VERSION, "Cache-Control": "no-cache", "Pragma": "no-cache"}
    return web.Response(text="OK", headers=headers)


@routes.get("/version")
async def version(request):
    sb = common.containers(request).sandboxes
    return web.json_response(
        {
            "Platform": {"Name": "hyper"},
            "Components": [{"Name": "hyperd", "Version": __version__, "Details": {}}],
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "Os": "linux",
            "Arch": "amd64",
            "KernelVersion": platform.release(),
            "GoVersion": "",
            "GitCommit": "",
            "BuildTime": "",
            "Hyper": {"Accel": sb.accel, "Kernel": sb.assets.kernel, "Initrd": sb.assets.initrd},
        }
    )


@routes.get("/info")
async def info(request):
    svc = common.containers(request)
    cs = list(svc.store)
    running = sum(1 for c in cs if c.state.status == "running")
    paused = sum(1 for c in cs if c.state.paused)
    images = common.images(request)
    return web.json_response(
        {
            "ID": "hyperd",
            "Debug": svc.config.log_level.lower() == "debug",
            "SystemTime": now_rfc3339(),
            "Containers": len(cs),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": len(cs) - running - paused,
            "Images": len(await asyncio.to_thread(images.list)),
            "Driver": images.rootfs_fstype,
            "DriverStatus": [],
            "DockerRootDir": svc.config.root,
            "NCPU": os.cpu_count(),
            "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "OperatingSystem": _os_name(),
            "OSType": "linux",
            "Architecture": platform.machine(),
            "KernelVersion": platform.release(),
            "ServerVersion": __version__,
            "Name": platform.node(),
            "LoggingDriver": "json-file",
            "CgroupDriver": "none",
            "Runtimes": {"hyper": {"path": "hyperd"}, "runc": {"path": "hyperd"}},
            "DefaultRuntime": "hyper",
            "Swarm": {"LocalNodeState": "inactive"},
            "Plugins": {"Volume": [], "Network": ["bridge", "null"], "Log": ["json-file"]},
            "Labels": [],
            "ExperimentalBuild": False,
            "Hyper": {
                "Accel": svc.sandboxes.accel,
                "DefaultCpus": svc.config.cpus,
                "DefaultMemory": svc.config.memory_bytes,
                "VMPool": {"Size": svc.sandboxes.pool.size, "Ready": svc.sandboxes.pool.ready},
                "VMTemplate": svc.sandboxes.template_status(),
            },
        }
    )


def _os_name() -> str:
    with contextlib.suppress(OSError), open("/etc/os-release") as f:
        for line in f:
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


@routes.get("/events")
async def events(request):
    q = request.query
    since, until = decode.timestamp(q, "since"), decode.timestamp(q, "until")
    filters = decode.filters(q.get("filters"), EVENT_FILTERS)
    if since is not None and since > time.time() + 1:
        since = None
    stream = common.events(request).stream(since, until, filters)

    async def items():
        async for event in stream:
            yield event.to_json()

    return await common.json_lines(request, items())


@routes.get("/system/df")
async def disk_usage(request):
    return web.json_response(
        await views.disk_usage(common.containers(request), common.images(request))
    )


@routes.post("/auth")
async def auth(request):
    f = decode.Fields(await common.body(request))
    server = f.str("serveraddress") or "docker.io"
    user, password = f.str("username"), f.str("password")
    await asyncio.to_thread(common.images(request).login, server, user, password)
    return web.json_response({"Status": "Login Succeeded"})


@routes.post("/auth/logout")
async def logout(request):
    f = decode.Fields(await common.body(request))
    server = f.str("serveraddress") or "docker.io"
    if not await asyncio.to_thread(common.images(request).logout, server):
        return web.json_response({"message": f"Not logged in to {server}"}, status=404)
    return web.json_response({"Status": f"Removing login credentials for {server}"})


class NotInSwarm(Unavailable):
    """Docker's answer on a node outside a swarm (hyper has no swarm mode)."""


@routes.get("/swarm")
@routes.post("/swarm/leave")
@routes.post("/swarm/init")
@routes.post("/swarm/join")
async def swarm(request):
    """Swarm mode is not part of hyper: every node is outside a swarm, as a Docker daemon that
    never joined one answers (clients such as docker-py's `leave(force=True)` expect it)."""
    raise NotInSwarm(
        "This node is not part of a swarm (hyper has no swarm mode: "
        "use compose files with `docker-compose`)"
    )
