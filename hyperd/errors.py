"""The one exception root of hyper.

Every error that reaches a user is a HyperError: it carries a message, an HTTP status
for the API, and the exit code the CLI uses (Docker's: 125 daemon/usage error,
126 cannot execute, 127 not found).
"""


class HyperError(Exception):
    """Base of every error hyper raises on purpose."""

    status = 500
    exit_code = 125

    def __init__(self, message: str, **data):
        super().__init__(message)
        self.message = message
        self.data = data

    def to_dict(self) -> dict:
        """Serialise for the API (`{"message": ..., "kind": ...}` plus data)."""
        return {"message": self.message, "kind": type(self).__name__, **self.data}


class NotFound(HyperError):
    """A named thing (image, container, exec) does not exist."""

    status = 404


class Conflict(HyperError):
    """The request clashes with the current state (name in use, image in use)."""

    status = 409


class InvalidArgument(HyperError):
    """The request is malformed or has bad values."""

    status = 400
