"""Plumbing shared by the route modules: the services, bodies, streamed answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from hyperd.containers.service import ContainerService
from hyperd.errors import HyperError
from hyperd.events import EventBus
from hyperd.images.service import ImageService

from . import decode

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20


def containers(request: web.Request) -> ContainerService:
    return request.app["containers"]


def images(request: web.Request) -> ImageService:
    return request.app["images"]


def events(request: web.Request) -> EventBus:
    return request.app["events"]


async def body(request: web.Request) -> dict:
    """The request's JSON object (empty when there is no body); a 400 when malformed."""
    if not request.can_read_body:
        return {}
    return decode.parse_body(await request.read())


async def json_lines(request: web.Request, items: AsyncIterator[dict]) -> web.StreamResponse:
    """Stream JSON documents, one per line, as Docker's streaming endpoints do."""
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    try:
        async for item in items:
            await resp.write(json.dumps(item).encode() + b"\n")
    except ConnectionError:
        return resp
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()
    return resp


async def in_thread_streaming(request, work: Callable[[Callable[[dict], None]], None]):
    """Run blocking ``work(progress)`` in a thread, streaming its progress as JSON lines."""
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

    async def items():
        task = asyncio.create_task(run())
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            await task

    return await json_lines(request, items())
