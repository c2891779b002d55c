"""Volume snapshots: point-in-time copies of a volume's disk image, as the original Hyper
kept durable backups of its block volumes.

A snapshot is a sparse (or reflinked, where the host filesystem can) copy of the disk image
under ``<root>/snapshots/``; only the blocks the volume uses take space. The caller makes
the copy consistent: a volume in use by a running VM is synced by the agent and the VM is
paused for the time of the copy (hyperd/containers/volumes.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hyperd.containers.state import now_rfc3339
from hyperd.errors import Conflict, HyperError, NotFound

if TYPE_CHECKING:
    from .store import VolumeStore

SCHEMA = "CREATE TABLE IF NOT EXISTS snapshots (name TEXT PRIMARY KEY, data TEXT NOT NULL)"


@dataclass
class Snapshot:
    """One snapshot's record."""

    name: str
    volume: str
    created: str
    size: int  # the volume's size when it was taken


class Snapshots:
    """The snapshots of the daemon's volumes (records beside the volumes')."""

    def __init__(self, volumes: VolumeStore):
        self.volumes = volumes
        self.root = volumes.root.parent / "snapshots"
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self._db = volumes.db
        with volumes.lock, self._db:
            self._db.execute(SCHEMA)

    def path(self, name: str) -> Path:
        """A snapshot's disk image."""
        return self.root / f"{name}.ext4"

    def get(self, name: str) -> Snapshot:
        with self.volumes.lock:
            row = self._db.execute("SELECT data FROM snapshots WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no such snapshot: {name}")
        return Snapshot(**json.loads(row[0]))

    def list(self, volume: str = "") -> list[Snapshot]:
        with self.volumes.lock:
            rows = self._db.execute("SELECT data FROM snapshots ORDER BY name").fetchall()
        out = [Snapshot(**json.loads(r[0])) for r in rows]
        return [s for s in out if not volume or s.volume == volume]

    def take(self, volume: str, name: str) -> Snapshot:
        """Copy the volume's disk now (the caller has quiesced it)."""
        vol = self.volumes.get(volume)
        with self.volumes.lock:
            taken = self._db.execute("SELECT 1 FROM snapshots WHERE name = ?", (name,)).fetchone()
        if taken:
            raise Conflict(f"a snapshot named {name} exists already")
        snap = Snapshot(name, volume, now_rfc3339(), vol.size)
        _copy(self.volumes.disk(volume), self.path(name))
        with self.volumes.lock, self._db:
            self._db.execute(
                "INSERT INTO snapshots (name, data) VALUES (?, ?)", (name, json.dumps(asdict(snap)))
            )
        return snap

    def restore(self, name: str, volume: str) -> None:
        """Make a new volume's disk a copy of the snapshot (VolumeStore.create calls this)."""
        self.get(name)
        _copy(self.path(name), self.volumes.disk(volume))

    def remove(self, name: str) -> None:
        self.get(name)
        with self.volumes.lock, self._db:
            self._db.execute("DELETE FROM snapshots WHERE name = ?", (name,))
        self.path(name).unlink(missing_ok=True)

    def usage(self, name: str) -> int:
        """Bytes the snapshot takes on the host."""
        try:
            return self.path(name).stat().st_blocks * 512
        except FileNotFoundError:
            return 0


def _copy(src: Path, dst: Path) -> None:
    """A sparse-aware copy (a reflink where the filesystem has them), atomic at ``dst``."""
    tmp = dst.with_name(dst.name + ".tmp")
    res = subprocess.run(
        ["cp", "--sparse=always", "--reflink=auto", str(src), str(tmp)],
        capture_output=True,
        text=True,
    )
    if res.returncode:
        tmp.unlink(missing_ok=True)
        raise HyperError(f"cannot copy {src.name}: {res.stderr.strip()}")
    shutil.move(tmp, dst)
