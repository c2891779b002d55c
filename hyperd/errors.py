"""The daemon's exception root: the error kinds shared with the client (hyperapi.errors).

Every error that reaches a user is a HyperError: it carries a message, an HTTP status for
the API, and the exit code the CLI uses. Subsystems subclass these kinds (and may set
``status`` or ``exit_code``); the API answers with ``HyperError.to_dict()``.
"""

from hyperapi.errors import (
    CannotExecute,
    CommandNotFound,
    Conflict,
    HyperError,
    InvalidArgument,
    NotFound,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "CannotExecute",
    "CommandNotFound",
    "Conflict",
    "HyperError",
    "InvalidArgument",
    "NotFound",
    "Unauthorized",
    "Unavailable",
]
