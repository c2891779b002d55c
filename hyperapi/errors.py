"""The error kinds the daemon and the client agree on (Docker's errdefs, in short).

Each kind is an exception class carrying the HTTP status the daemon answers with and the
exit code the CLI ends with (Docker's: 125 when hyper or the daemon refuse, 126 when a
program cannot be executed, 127 when it is not found). On the wire an error is
``{"message": ..., "kind": ..., "exitCode": N}``; the client rebuilds the exception from
``kind`` and ``exitCode``, never from the message text.
"""

from __future__ import annotations


class HyperError(Exception):
    """Root of every error hyper raises on purpose (kind ``Internal``)."""

    kind = "Internal"
    status = 500
    exit_code = 125

    def __init__(self, message: str, **data):
        super().__init__(message)
        self.message = message
        self.data = data

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A subclass that sets only `status` takes the kind that status stands for, so an
        # answer never pairs e.g. 400 with kind "Internal".
        if "kind" not in vars(cls) and "status" in vars(cls):
            cls.kind = KIND_BY_STATUS.get(cls.status, cls.kind)

    def to_dict(self) -> dict:
        """The API's error body: ``{"message", "kind", "exitCode"}`` plus any data."""
        return {**self.data, "message": self.message, "kind": self.kind, "exitCode": self.exit_code}


class InvalidArgument(HyperError):
    """The request is malformed or has bad values."""

    kind = "InvalidArgument"
    status = 400


class Unauthorized(HyperError):
    """Credentials are missing or were refused (e.g. by a registry)."""

    kind = "Unauthorized"
    status = 401


class NotFound(HyperError):
    """A named thing (image, container, exec) does not exist."""

    kind = "NotFound"
    status = 404


class Conflict(HyperError):
    """The request clashes with the current state (name in use, image in use)."""

    kind = "Conflict"
    status = 409


class Unavailable(HyperError):
    """A resource is exhausted or a service is down for now; retrying may work."""

    kind = "Unavailable"
    status = 503


#: Every kind by its name, as sent in the ``kind`` field.
KINDS: dict[str, type[HyperError]] = {
    cls.kind: cls
    for cls in (HyperError, InvalidArgument, Unauthorized, NotFound, Conflict, Unavailable)
}
#: The kind an HTTP status stands for (for answers that carry no ``kind``).
KIND_BY_STATUS: dict[int, str] = {cls.status: name for name, cls in KINDS.items()}


class CannotExecute(InvalidArgument):
    """A container's program exists but cannot be executed (Docker's exit code 126)."""

    exit_code = 126


class CommandNotFound(InvalidArgument):
    """A container's program does not exist (Docker's exit code 127)."""

    exit_code = 127
