"""The client's exceptions: one per error kind of hyperapi.errors, built from the daemon's
error body (its ``kind`` and ``exitCode``, never its message text)."""

from __future__ import annotations

from hyperapi.errors import (
    KIND_BY_STATUS,
    Conflict,
    HyperError,
    InvalidArgument,
    NotFound,
    Unauthorized,
    Unavailable,
)


class APIError(HyperError):
    """The daemon answered with an error (``status_code`` is its HTTP status)."""

    def __init__(self, message: str, status_code: int = 500, **data):
        super().__init__(message, **data)
        self.status_code = status_code
        self.status = status_code


class InvalidArgumentError(APIError, InvalidArgument):
    """400: a bad parameter."""


class UnauthorizedError(APIError, Unauthorized):
    """401: credentials missing or refused."""


class NotFoundError(APIError, NotFound):
    """404: no such container / image / exec."""


class ConflictError(APIError, Conflict):
    """409: name in use, container running, image in use..."""


class UnavailableError(APIError, Unavailable):
    """503: a resource is exhausted for now."""


class DaemonUnreachable(HyperError):
    """The daemon's socket cannot be reached."""


#: The exception for each kind of hyperapi.errors (Internal and unknown kinds: APIError).
ERRORS_BY_KIND: dict[str, type[APIError]] = {
    cls.kind: cls
    for cls in (
        APIError,
        InvalidArgumentError,
        UnauthorizedError,
        NotFoundError,
        ConflictError,
        UnavailableError,
    )
}


def api_error(status: int, body: bytes, reason: str = "") -> APIError:
    """The exception for an error answer: its class from the body's ``kind`` (from the
    status when a Docker-style body has none), its exit code from ``exitCode`` (else 125)."""
    from hyperctl import fastjson

    message = body.decode("utf-8", "replace").strip()
    try:
        data = fastjson.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = str(data.get("message") or data.get("error") or "")
    else:
        data = {}
    kind = data.get("kind")
    if not isinstance(kind, str):
        kind = KIND_BY_STATUS.get(status, APIError.kind)
    err = ERRORS_BY_KIND.get(kind, APIError)(message or f"{status} {reason}".strip(), status)
    err.kind = kind
    code = data.get("exitCode")
    if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255:
        err.exit_code = code
    return err
