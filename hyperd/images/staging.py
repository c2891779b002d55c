"""Where an image's layers are flattened before mkfs packs them: tmpfs when it has room.

The flattened tree lives only until mkfs has read it, so writing it to disk (and deleting
it after) is wasted I/O; on tmpfs the flatten takes about half the time. tmpfs is memory,
so it is used only when the tree fits well within both its free space and the host's
available memory; otherwise, or when the size cannot be told, the tree goes to disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

TMPFS = Path("/dev/shm")
# The tree may take up to this share of tmpfs's free space and of the available memory.
MAX_SHARE = 0.25


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
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def build_dir(layers: Iterable[Path], fallback: Path, tmpfs: Path = TMPFS) -> Path:
    """``tmpfs`` when the layers' expanded tree fits in MAX_SHARE of its free space and of
    the available memory, else ``fallback``."""
    sizes = [uncompressed_size(Path(p)) for p in layers]
    if any(s is None for s in sizes):
        return fallback
    need = sum(sizes)
    try:
        st = os.statvfs(tmpfs)
    except OSError:
        return fallback
    room = min(st.f_bavail * st.f_frsize, mem_available())
    return tmpfs if need <= room * MAX_SHARE else fallback
