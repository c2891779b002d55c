"""Opening the daemon's SQLite databases so they survive a full disk.

WAL mode keeps its index in a shared-memory file (``-shm``) that SQLite makes when the first
connection opens the database; on a full disk that fails ("disk I/O error") and the daemon
could not even start. Then the database is opened in exclusive locking mode, where the WAL
index lives in the process's memory: reads work, writes fail with "database or disk is
full" (a 507 at the API) until space returns.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from hyperd.errors import disk_full

log = logging.getLogger(__name__)


def connect(path: str | os.PathLike, **kwargs) -> sqlite3.Connection:
    """A connection to the database at ``path`` in WAL mode (exclusive on a full disk);
    ``kwargs`` go to :func:`sqlite3.connect`."""
    path = Path(path)
    db = sqlite3.connect(str(path), **kwargs)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        return db
    except sqlite3.OperationalError:
        db.close()
        if not disk_full(path.parent):
            raise
    db = sqlite3.connect(str(path), **kwargs)
    db.execute("PRAGMA locking_mode=EXCLUSIVE")
    db.execute("PRAGMA journal_mode=WAL")
    log.warning("the disk of %s is full: its database is read-only until space returns", path)
    return db
