"""Where an image's layers are flattened before mkfs packs them: tmpfs when it has room.

The flattened tree lives only until mkfs has read it, so writing it to disk (and deleting
it after) is wasted I/O; on tmpfs the flatten takes about half the time. tmpfs is memory, so
a build is staged there only when a generous bound of its tree (every KiB of the layers'
tars taking a 4 KiB page) fits in half of what tmpfs and the host's available memory have
left after the builds already staged; the layers' sizes come from their gzip trailers,
which the image's author wrote, so the build is held to them (a larger tree gives out and
the build moves to disk). tmpfs refusing an extended attribute (``user.*`` before Linux
6.6) or filling up moves the build to disk too, so the root disk is the same either way.

Each daemon stages in a directory of its own, ``/dev/shm/hyperd-<hash of its root>``
(root, 0700), emptied when the daemon starts: a build cut short by a crash holds no memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import shutil
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from hyperd.images.limits import ImageLimits, ImageTooLarge

TMPFS = Path("/dev/shm")
PAGE_BOUND = 4  # tmpfs bytes per tar byte at worst: a 1 KiB entry takes a 4 KiB page
SHARE = 0.5  # of tmpfs's free space and of the available memory, for all staged builds
GAVE_OUT = (errno.ENOSPC, errno.EOPNOTSUPP, errno.ENOTSUP)


def uncompressed_size(path: Path) -> int | None:
    """A layer's tar size: from the gzip trailer (ISIZE), or the file itself when it is a
    plain tar; None when it cannot be told cheaply (zstd, a gzip of 4 GiB or more)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic[:2] != b"\x1f\x8b":
            return None if magic == b"\x28\xb5\x2f\xfd" else size
        f.seek(-4, os.SEEK_END)
        isize = int.from_bytes(f.read(4), "little")
    # ISIZE is the size modulo 4 GiB: past that it can wrap below the compressed size.
    return isize if isize >= size and size < 1 << 32 else None


def mem_available() -> int:
    """MemAvailable from /proc/meminfo, in bytes (0 when unknown)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


class Staging:
    """One daemon's staging directory on tmpfs and the room its builds hold there."""

    def __init__(self, root: Path, tmpfs: Path | None = None):
        self.tmpfs = tmpfs or TMPFS
        tag = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:12]
        self.dir = self.tmpfs / f"hyperd-{tag}"
        self._lock = threading.Lock()
        self._held = 0
        shutil.rmtree(self.dir, ignore_errors=True)  # left by a daemon that died mid-build

    @contextlib.contextmanager
    def reserve(self, layers: Iterable[Path]) -> Iterator[int | None]:
        """Room for these layers' tree: yields their tar bytes (the most the tree may hold,
        see ``capped``) while it is held, or None when the build belongs on disk."""
        sizes = [uncompressed_size(Path(p)) for p in layers]
        need = None if None in sizes else sum(sizes)
        with self._lock:
            if need is None or PAGE_BOUND * need > self._room() - self._held:
                need = None
            else:
                self._held += PAGE_BOUND * need
        try:
            yield need
        finally:
            if need is not None:
                with self._lock:
                    self._held -= PAGE_BOUND * need
                    if not self._held:  # no build staged: no directory left behind
                        with contextlib.suppress(OSError):
                            self.dir.rmdir()

    def _room(self) -> int:
        try:
            st = os.statvfs(self.tmpfs)
        except OSError:
            return 0
        return int(min(st.f_bavail * st.f_frsize, mem_available()) * SHARE)

    def workdir(self) -> Path:
        """The staging directory (made root-only if it is not there)."""
        self.dir.mkdir(mode=0o700, exist_ok=True)
        return self.dir

    def gave_out(self, exc: BaseException) -> bool:
        """Did a staged build fail for staging's sake (the build belongs on disk)?"""
        if isinstance(exc, ImageTooLarge):
            return True  # past the layers' own sizes; on disk the real limits decide
        if not isinstance(exc, OSError) or exc.errno not in GAVE_OUT:
            return False
        return str(exc.filename or "").startswith(f"{self.dir}/")


def capped(limits: ImageLimits, tar_bytes: int) -> ImageLimits:
    """``limits`` with file content held to the layers' tar size (what tmpfs was promised)."""
    return dataclasses.replace(limits, max_size=min(limits.max_size, tar_bytes))
