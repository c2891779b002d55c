"""A small synchronous client for the hyperd API (docs/api.md) over hyperctl.httpconn.

Methods map 1:1 to endpoints, like docker-py's ``APIClient``; they live in
``hyperctl/endpoints/`` by endpoint group and meet here. Every request opens its own
connection (see ``hyperctl.transport``); streaming endpoints return generators, and attach /
exec start return a :class:`HijackedConnection`.
"""

from __future__ import annotations

from hyperctl.endpoints.archive import ArchiveEndpoints, ArchiveReader, PathStat
from hyperctl.endpoints.containers import ContainerEndpoints, PendingWait
from hyperctl.endpoints.exec import ExecEndpoints
from hyperctl.endpoints.images import ImageEndpoints
from hyperctl.endpoints.networks import NetworkEndpoints
from hyperctl.endpoints.system import DEFAULT_REGISTRY, SystemEndpoints
from hyperctl.endpoints.volumes import VolumeEndpoints
from hyperctl.errors import (
    ERRORS_BY_KIND,
    APIError,
    ConflictError,
    DaemonUnreachable,
    InvalidArgumentError,
    NotFoundError,
    UnauthorizedError,
    UnavailableError,
    api_error,
)
from hyperctl.transport import DEFAULT_HOST, DEFAULT_TIMEOUT, resolve_host
from hyperctl.wire import (
    STDERR,
    STDOUT,
    FrameDecoder,
    HijackedConnection,
    demux,
    json_stream,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_REGISTRY",
    "DEFAULT_TIMEOUT",
    "ERRORS_BY_KIND",
    "STDERR",
    "STDOUT",
    "APIClient",
    "APIError",
    "ArchiveReader",
    "ConflictError",
    "DaemonUnreachable",
    "FrameDecoder",
    "HijackedConnection",
    "InvalidArgumentError",
    "NotFoundError",
    "PathStat",
    "PendingWait",
    "UnauthorizedError",
    "UnavailableError",
    "api_error",
    "demux",
    "json_stream",
    "resolve_host",
]


class APIClient(
    SystemEndpoints,
    ImageEndpoints,
    ContainerEndpoints,
    ArchiveEndpoints,
    ExecEndpoints,
    VolumeEndpoints,
    NetworkEndpoints,
):
    """One method per endpoint of docs/api.md."""
