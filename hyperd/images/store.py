"""Content-addressed blob store plus the image metadata index (SQLite).

Layout under ``root``::

    blobs/sha256/<hex>    verified content, written atomically
    ingest/               partial downloads; anything here is garbage after a crash
    rootfs/               built read-only root filesystem images (see rootfs.py)
    images.db             images and tags tables (see ImageIndex)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from hyperd import sqlitedb
from hyperd.images.errors import DigestMismatch, ImageError, ImageNotFound
from hyperd.images.manifest import Descriptor
from hyperd.images.reference import validate_digest

CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """The ``sha256:<hex>`` digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def fsync_path(path: Path) -> None:
    """Flush a file's or a directory's data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ContentStore:
    """Blobs addressed by sha256 digest; nothing unverified ever appears under blobs/."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.blob_dir = self.root / "blobs" / "sha256"
        self.ingest_dir = self.root / "ingest"
        for d in (self.blob_dir, self.ingest_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._leases: Counter[str] = Counter()
        self._digest_locks: dict[str, threading.Lock] = {}
        self.clean_ingest()

    def clean_ingest(self) -> None:
        """Drop partial downloads left by an interrupted process."""
        for p in self.ingest_dir.iterdir():
            with contextlib.suppress(OSError):
                p.unlink()

    def path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it exists)."""
        validate_digest(digest)
        algo, hexpart = digest.split(":", 1)
        if algo != "sha256":
            raise ImageError(f"unsupported digest algorithm in {digest}")
        return self.blob_dir / hexpart

    def has(self, digest: str, size: int | None = None) -> bool:
        """True if the blob is stored (and has ``size`` bytes, when given)."""
        try:
            st = self.path(digest).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def read(self, digest: str) -> bytes:
        """The blob's bytes (for small blobs: manifests, configs)."""
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise ImageNotFound(f"blob {digest} is not in the content store") from None

    def digests(self) -> set[str]:
        """All stored blob digests."""
        return {"sha256:" + p.name for p in self.blob_dir.iterdir() if not p.name.startswith(".")}

    @contextlib.contextmanager
    def lock_digest(self, digest: str) -> Iterator[None]:
        """Serialise work on one digest (two pulls sharing a layer download it once)."""
        with self._lock:
            lock = self._digest_locks.setdefault(digest, threading.Lock())
        with lock:
            yield

    @contextlib.contextmanager
    def lease(self, digests) -> Iterator[None]:
        """Protect ``digests`` from garbage collection while a pull/load is recording them."""
        digests = list(digests)
        with self._lock:
            self._leases.update(digests)
        try:
            yield
        finally:
            with self._lock:
                self._leases.subtract(digests)
                self._leases += Counter()  # drop zero counts

    def leased(self) -> set[str]:
        """Digests currently protected by a lease."""
        with self._lock:
            return set(self._leases)

    @contextlib.contextmanager
    def ingest(self, desc: Descriptor | None = None, verified: bool = False) -> Iterator[BinaryIO]:
        """Yield a temp file in ingest/; on clean exit verify it and commit it as a blob.

        With ``desc``, size and digest must match it (``verified``: the caller hashed the
        bytes while writing, only the size is re-checked). The committed digest is set on
        the file object as ``.digest``. On error the partial file is removed.
        """
        fd, tmp = tempfile.mkstemp(dir=self.ingest_dir, prefix="blob-", suffix=".partial")
        try:
            with os.fdopen(fd, "w+b") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
                f.digest = self._commit(Path(tmp), desc, verified and desc is not None)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _commit(self, tmp: Path, desc: Descriptor | None, verified: bool) -> str:
        digest = desc.digest if verified else sha256_file(tmp)
        size = tmp.stat().st_size
        if desc is not None:
            if size != desc.size:
                raise DigestMismatch(f"blob {desc.digest}: {size} bytes, expected {desc.size}")
            if digest != desc.digest:
                raise DigestMismatch(f"blob {desc.digest}: content has digest {digest}")
        target = self.path(digest)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
        fsync_path(self.blob_dir)
        return digest

    def write(self, data: bytes, digest: str | None = None) -> str:
        """Store ``data`` (verified against ``digest`` if given); return its digest."""
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest is not None and digest != actual:
            raise DigestMismatch(f"content for {digest} has digest {actual}")
        if self.has(actual, len(data)):
            return actual
        with self.ingest(Descriptor("", actual, len(data))) as f:
            f.write(data)
        return actual

    def delete(self, digest: str) -> None:
        """Remove one blob (missing is fine)."""
        self.path(digest).unlink(missing_ok=True)


@dataclass
class ImageRecord:
    """What we know about one local image. ``id`` is the config digest, as in Docker."""

    id: str
    manifest_digest: str
    media_type: str
    config_digest: str
    layers: list[Descriptor]
    size: int
    created: str
    os: str
    architecture: str
    variant: str | None = None
    index_digest: str | None = None
    added: float = field(default_factory=time.time)
    tags: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)

    def blobs(self) -> set[str]:
        """Every blob this image keeps alive."""
        out = {self.manifest_digest, self.config_digest, *(d.digest for d in self.layers)}
        if self.index_digest:
            out.add(self.index_digest)
        return out

    @property
    def platform(self) -> str:
        """``os/arch[/variant]``."""
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    manifest_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    config_digest TEXT NOT NULL,
    layers TEXT NOT NULL,
    size INTEGER NOT NULL,
    created TEXT NOT NULL,
    os TEXT NOT NULL,
    architecture TEXT NOT NULL,
    variant TEXT,
    index_digest TEXT,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    ref TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('tag', 'digest'))
);
CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS parents (
    id TEXT PRIMARY KEY,
    parent TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS parents_parent ON parents(parent);
CREATE TABLE IF NOT EXISTS build_cache (
    parent TEXT NOT NULL,
    key TEXT NOT NULL,
    image_id TEXT NOT NULL,
    PRIMARY KEY (parent, key)
);
"""

_COLUMNS = (
    "id, manifest_digest, media_type, config_digest, layers, size, created, os, "
    "architecture, variant, index_digest, added"
)


class ImageIndex:
    """Image records and their names in a small SQLite DB (tables ``images``, ``tags``).

    Tags hold full references (``docker.io/library/nginx:latest``); kind ``digest`` rows
    hold repo digests (``registry/repo@sha256:…``).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        # One connection for the daemon's life, used by one thread at a time: it keeps the
        # WAL files (a closing last connection deletes them, and a full disk could not
        # make them again), and on a full disk it is the only one allowed.
        self._conn = sqlitedb.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA foreign_keys = ON")
        with contextlib.suppress(sqlite3.OperationalError):  # a full disk: the schema exists
            self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _db(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """A transaction; a reading one (``write=False``) takes no write lock, so lookups
        still work on a full disk."""
        with self._lock:
            db = self._conn
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def put(self, rec: ImageRecord, refs: list[tuple[str, str]]) -> None:
        """Insert/refresh ``rec`` and point each (ref, kind) at it, in one transaction."""
        layers = json.dumps([d.to_dict() for d in rec.layers])
        row = (
            rec.id, rec.manifest_digest, rec.media_type, rec.config_digest, layers, rec.size,
            rec.created, rec.os, rec.architecture, rec.variant, rec.index_digest, rec.added,
        )  # fmt: skip
        with self._db() as db:
            db.execute(
                f"INSERT INTO images ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET manifest_digest=excluded.manifest_digest, "
                "media_type=excluded.media_type, layers=excluded.layers, size=excluded.size, "
                "index_digest=COALESCE(excluded.index_digest, images.index_digest)",
                row,
            )
            for ref, kind in refs:
                db.execute(
                    "INSERT INTO tags (ref, image_id, kind) VALUES (?,?,?) "
                    "ON CONFLICT(ref) DO UPDATE SET image_id=excluded.image_id",
                    (ref, rec.id, kind),
                )

    def _record(self, db: sqlite3.Connection, row: tuple) -> ImageRecord:
        rec = ImageRecord(
            id=row[0], manifest_digest=row[1], media_type=row[2], config_digest=row[3],
            layers=[Descriptor.from_dict(d, "stored layer") for d in json.loads(row[4])],
            size=row[5], created=row[6], os=row[7], architecture=row[8], variant=row[9],
            index_digest=row[10], added=row[11],
        )  # fmt: skip
        for ref, kind in db.execute(
            "SELECT ref, kind FROM tags WHERE image_id = ? ORDER BY ref", (rec.id,)
        ):
            (rec.tags if kind == "tag" else rec.digests).append(ref)
        return rec

    def get(self, image_id: str) -> ImageRecord | None:
        """The record for a full image ID, or None."""
        with self._db(write=False) as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM images WHERE id = ?", (image_id,)).fetchone()
            return self._record(db, row) if row else None

    def by_ref(self, ref: str) -> str | None:
        """The image ID a full tag or repo digest reference points at."""
        with self._db(write=False) as db:
            row = db.execute("SELECT image_id FROM tags WHERE ref = ?", (ref,)).fetchone()
            return row[0] if row else None

    def by_manifest(self, name: str, digest: str) -> str | None:
        """Image ID in repository ``name`` whose manifest or index has ``digest``."""
        with self._db(write=False) as db:
            row = db.execute(
                "SELECT id FROM images WHERE manifest_digest = ? OR index_digest = ? "
                "ORDER BY (id IN (SELECT image_id FROM tags WHERE ref LIKE ?)) DESC LIMIT 1",
                (digest, digest, name + "%"),
            ).fetchone()
            return row[0] if row else None

    def by_prefix(self, prefix: str) -> list[str]:
        """Image IDs starting with ``sha256:<prefix>``."""
        with self._db(write=False) as db:
            rows = db.execute(
                "SELECT id FROM images WHERE substr(id, 1, ?) = ?",
                (len("sha256:" + prefix), "sha256:" + prefix),
            ).fetchall()
            return [r[0] for r in rows]

    def all(self) -> list[ImageRecord]:
        """Every image, newest first."""
        with self._db(write=False) as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM images ORDER BY added DESC").fetchall()
            return [self._record(db, r) for r in rows]

    def untag(self, ref: str) -> str | None:
        """Drop a tag/digest row; return the image ID it pointed at."""
        with self._db() as db:
            row = db.execute("SELECT image_id FROM tags WHERE ref = ?", (ref,)).fetchone()
            db.execute("DELETE FROM tags WHERE ref = ?", (ref,))
            return row[0] if row else None

    def delete(self, image_id: str) -> None:
        """Remove an image, every name pointing at it and the build cache entries naming it."""
        with self._db() as db:
            db.execute("DELETE FROM tags WHERE image_id = ?", (image_id,))
            db.execute("DELETE FROM images WHERE id = ?", (image_id,))
            db.execute("DELETE FROM parents WHERE id = ?", (image_id,))
            db.execute("DELETE FROM build_cache WHERE image_id = ?", (image_id,))

    # -- local history: parents (commit, build) and the build cache ----------------------------

    def set_parent(self, image_id: str, parent: str) -> None:
        """Record that ``image_id`` was made on top of the local image ``parent``."""
        with self._db() as db:
            db.execute(
                "INSERT INTO parents (id, parent) VALUES (?, ?) "
                "ON CONFLICT(id) DO UPDATE SET parent=excluded.parent",
                (image_id, parent),
            )

    def parent(self, image_id: str) -> str | None:
        """The local parent of an image (committed or built here), if known."""
        with self._db(write=False) as db:
            row = db.execute("SELECT parent FROM parents WHERE id = ?", (image_id,)).fetchone()
            return row[0] if row else None

    def children(self, image_id: str) -> list[str]:
        """Local images made on top of ``image_id``."""
        with self._db(write=False) as db:
            rows = db.execute("SELECT id FROM parents WHERE parent = ?", (image_id,)).fetchall()
            return [r[0] for r in rows]

    def cache_get(self, parent: str, key: str) -> str | None:
        """The image a build step with ``key`` made on ``parent`` before."""
        with self._db(write=False) as db:
            row = db.execute(
                "SELECT image_id FROM build_cache WHERE parent = ? AND key = ?", (parent, key)
            ).fetchone()
            return row[0] if row else None

    def cache_put(self, parent: str, key: str, image_id: str) -> None:
        """Remember the image a build step made."""
        with self._db() as db:
            db.execute(
                "INSERT INTO build_cache (parent, key, image_id) VALUES (?, ?, ?) "
                "ON CONFLICT(parent, key) DO UPDATE SET image_id=excluded.image_id",
                (parent, key, image_id),
            )

    def cache_images(self) -> set[str]:
        """The images the build cache names."""
        with self._db(write=False) as db:
            return {row[0] for row in db.execute("SELECT image_id FROM build_cache")}

    def cache_clear(self) -> int:
        """Forget every build cache entry; returns how many there were."""
        with self._db() as db:
            return db.execute("DELETE FROM build_cache").rowcount

    def referenced_blobs(self) -> set[str]:
        """Digests still needed by some image."""
        out: set[str] = set()
        for rec in self.all():
            out |= rec.blobs()
        return out
