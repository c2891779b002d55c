"""The daemon's state store: SQLite under the root dir.

Containers are rows keyed by ID with a unique name and their record as JSON, so the
schema does not have to chase every field; writes are transactions.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from pathlib import Path

from hyperd import sqlitedb

SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);
"""


class StateStore:
    """Container records in ``<root>/state.db``."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlitedb.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA synchronous=NORMAL")
        with contextlib.suppress(sqlite3.OperationalError):  # a full disk: the schema exists
            self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def put(self, cid: str, name: str, data: dict) -> None:
        """Insert or replace a container record (raises sqlite3.IntegrityError on name clash)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO containers (id, name, data) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET name = excluded.name, data = excluded.data",
                (cid, name, json.dumps(data)),
            )

    def delete(self, cid: str) -> None:
        """Forget a container."""
        with self._lock:
            self._db.execute("DELETE FROM containers WHERE id = ?", (cid,))

    def all(self) -> list[dict]:
        """Every container record."""
        with self._lock:
            rows = self._db.execute("SELECT data FROM containers").fetchall()
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
