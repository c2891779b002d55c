"""The daemon's exception root: the error kinds shared with the client (hyperapi.errors).

Every error that reaches a user is a HyperError: it carries a message, an HTTP status for
the API, and the exit code the CLI uses. Subsystems subclass these kinds (and may set
``status`` or ``exit_code``); the API answers with ``HyperError.to_dict()``.
"""

import errno
import os
import sqlite3

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


class NoSpace(Unavailable):
    """A disk the daemon writes to is full: 507 Insufficient Storage, naming the disk."""

    status = 507


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes an unprivileged writer may still use on the disk of ``path`` (None: unknown)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def disk_full(path: str | os.PathLike) -> bool:
    """Has the disk of ``path`` less than 1 MiB left?"""
    free = free_bytes(path)
    return free is not None and free < (1 << 20)


def is_no_space(exc: BaseException, root: str) -> bool:
    """Is ``exc`` a full disk (ENOSPC, a quota, or SQLite's ways of saying so: "database or
    disk is full", or an I/O error while the disk of ``root`` has no room left)?"""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    if "full" in str(exc):
        return True
    return "I/O error" in str(exc) and disk_full(root)


def no_space(root: str, exc: BaseException, what: str) -> NoSpace:
    """The user's error for ``exc`` while doing ``what`` with the daemon root at ``root``."""
    mount = os.path.realpath(root)
    while not os.path.ismount(mount):
        mount = os.path.dirname(mount)
    left = free_bytes(root)
    free = "free space unknown" if left is None else f"{left / (1 << 20):.1f} MiB free"
    where = getattr(exc, "filename", None) or "its data"
    return NoSpace(
        f"no space left on the disk of {root} (filesystem {mount}, {free}): "
        f"{what} could not write {where}"
    )


__all__ = [
    "NoSpace",
    "CannotExecute",
    "CommandNotFound",
    "Conflict",
    "HyperError",
    "InvalidArgument",
    "NotFound",
    "Unauthorized",
    "Unavailable",
]
