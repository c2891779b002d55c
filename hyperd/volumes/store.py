"""The volume store: records in SQLite, disk images made sparse with mkfs.ext4."""

from __future__ import annotations

import errno
import json
import secrets
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hyperapi.units import parse_size
from hyperd.containers.state import now_rfc3339
from hyperd.errors import Conflict, HyperError, InvalidArgument, NotFound

from .snapshots import Snapshots

DISK = "disk.ext4"
DRIVER = "local"
FILTERS = {"dangling", "driver", "label", "name"}
SCHEMA = "CREATE TABLE IF NOT EXISTS volumes (name TEXT PRIMARY KEY, data TEXT NOT NULL)"


@dataclass
class Volume:
    """One volume's record."""

    name: str
    created: str
    size: int
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False
    used: bool = False  # mounted once already: no more copying of image content into it


class VolumeStore:
    """All volumes of the daemon."""

    def __init__(self, root: str | Path, default_size: str = "10g"):
        self.root = Path(root) / "volumes"
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)  # QEMU (libvirt-qemu) must reach the disks
        self.default_size = parse_size(default_size)
        self.db = sqlite3.connect(str(self.root / "volumes.db"), check_same_thread=False)
        self.db.execute(SCHEMA)
        self.db.commit()
        self.lock = threading.Lock()
        self.snapshots = Snapshots(self)

    # -- records -----------------------------------------------------------------------

    def _put(self, v: Volume) -> None:
        with self.lock, self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO volumes (name, data) VALUES (?, ?)",
                (v.name, json.dumps(asdict(v))),
            )

    def get(self, name: str) -> Volume:
        """A volume by name."""
        with self.lock:
            row = self.db.execute("SELECT data FROM volumes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"get {name}: no such volume")
        return Volume(**json.loads(row[0]))

    def all(self) -> list[Volume]:
        with self.lock:
            rows = self.db.execute("SELECT data FROM volumes ORDER BY name").fetchall()
        return [Volume(**json.loads(r[0])) for r in rows]

    def disk(self, name: str) -> Path:
        """The volume's disk image."""
        return self.root / name / DISK

    # -- create / remove ---------------------------------------------------------------

    def create(
        self,
        name: str = "",
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
        anonymous: bool = False,
    ) -> Volume:
        """Create a volume, or return the existing one of that name (as Docker does)."""
        options = dict(options or {})
        unknown = set(options) - {"size", "snapshot"}
        if unknown:
            raise InvalidArgument(
                f"invalid option {sorted(unknown)[0]!r} for the local volume driver "
                "(hyper's volumes are disk images; the options are size=N and snapshot=NAME)"
            )
        snapshot = self.snapshots.get(options["snapshot"]) if "snapshot" in options else None
        size = parse_size(options["size"]) if "size" in options else self.default_size
        if snapshot is not None:
            size = snapshot.size
        if name:
            try:
                return self.get(name)
            except NotFound:
                pass
        else:
            name, anonymous = secrets.token_hex(32), True
        vol = Volume(name, now_rfc3339(), size, dict(labels or {}), options, anonymous)
        vol.used = snapshot is not None  # a restored volume is not filled from an image
        vdir = self.root / name
        vdir.mkdir(parents=True, exist_ok=True)
        vdir.chmod(0o711)
        try:
            if snapshot is not None:
                self.snapshots.restore(snapshot.name, name)
            else:
                _mkfs(self.disk(name), size)
            self._put(vol)
        except BaseException:
            shutil.rmtree(vdir, ignore_errors=True)
            raise
        return vol

    def mark_used(self, name: str) -> None:
        """The volume has been mounted (and filled, if it was going to be)."""
        vol = self.get(name)
        if not vol.used:
            vol.used = True
            self._put(vol)

    def remove(self, name: str, users: list[str]) -> None:
        """Remove a volume no container uses (``users``: IDs of those that do)."""
        self.get(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        with self.lock, self.db:
            self.db.execute("DELETE FROM volumes WHERE name = ?", (name,))
        shutil.rmtree(self.root / name, ignore_errors=True)

    def usage(self, name: str) -> int:
        """Bytes the volume's sparse disk image takes on the host."""
        try:
            return self.disk(name).stat().st_blocks * 512
        except FileNotFoundError:
            return 0

    # -- listing -----------------------------------------------------------------------

    def list(self, filters: dict[str, list[str]], in_use: Callable[[str], bool]) -> list[Volume]:
        """Volumes matching Docker's filters (dangling, driver, label, name)."""
        out = []
        for v in self.all():
            if all(any(self._match(v, k, x, in_use) for x in vs) for k, vs in filters.items()):
                out.append(v)
        return out

    @staticmethod
    def _match(v: Volume, key: str, value: str, in_use: Callable[[str], bool]) -> bool:
        if key == "dangling":
            if value not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid filter 'dangling={value}'")
            return (value in ("true", "1")) != in_use(v.name)
        if key == "driver":
            return value == DRIVER
        if key == "label":
            k, sep, val = value.partition("=")
            return k in v.labels and (not sep or v.labels[k] == val)
        return value in v.name  # name


def _mkfs(path: Path, size: int) -> None:
    """A sparse ext4 image with a journal (a volume outlives crashes of its VM)."""
    res = subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1",
         "-m", "0", str(path), str(size // 1024)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if res.returncode:
        if "No space left" in res.stderr:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        raise HyperError(f"cannot make the volume's filesystem: {res.stderr.strip()}")
    # mke2fs always makes lost+found; a new Docker volume is empty (e2fsck remakes it)
    subprocess.run(
        ["debugfs", "-w", "-R", "rmdir lost+found", str(path)], capture_output=True, check=False
    )
