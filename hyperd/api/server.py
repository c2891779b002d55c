"""The hyperd API application (docs/api.md): routes of every module, under Docker's /v1.NN
prefixes too, and one error middleware."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from hyperd.containers.service import ContainerService
from hyperd.errors import HyperError, is_no_space, no_space
from hyperd.events import EventBus
from hyperd.images.service import ImageService

from . import (
    archive,
    attach,
    build,
    changes,
    common,
    containers,
    exec,
    images,
    networks,
    system,
    volumes,
)
from .common import MAX_BODY

log = logging.getLogger(__name__)
API_VERSION = system.API_VERSION
MODULES = (system, images, build, containers, attach, archive, changes, exec, volumes, networks)


@web.middleware
async def errors(request: web.Request, handler):
    """HyperErrors become Docker error bodies; anything else is a logged 500."""
    try:
        return await handler(request)
    except HyperError as exc:
        return _error(exc.to_dict(), exc.status)
    except web.HTTPException:
        raise
    except ConnectionResetError:  # the client left mid-answer: nothing to answer, no fault
        log.info("%s %s: the client went away", request.method, request.path)
        raise
    except Exception as exc:
        root = common.containers(request).config.root
        if is_no_space(exc, root):
            err = no_space(root, exc, request.path)
            log.warning("%s", err.message)
            return _error(err.to_dict(), err.status)
        log.exception("%s %s failed", request.method, request.path)
        internal = HyperError("internal error (see hyperd's log)")
        return _error(internal.to_dict(), internal.status)


def _error(body: dict, status: int) -> web.Response:
    # Exactly "application/json": the docker CLI prints the raw body for any other type.
    return web.Response(
        body=json.dumps(body).encode(), status=status, content_type="application/json"
    )


def make_app(service: ContainerService, images_: ImageService, events: EventBus) -> web.Application:
    """The aiohttp application."""
    app = web.Application(middlewares=[errors], client_max_size=MAX_BODY)
    app["containers"] = service
    app["images"] = images_
    app["events"] = events
    for module in MODULES:
        for route in module.routes:
            app.router.add_route(route.method, route.path, route.handler)
            prefixed = r"/{_api:v[0-9]+\.[0-9]+}" + route.path
            app.router.add_route(route.method, prefixed, route.handler)
    return app
