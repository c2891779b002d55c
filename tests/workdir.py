"""Scratch directories that QEMU can reach, for tests and benchmarks."""

from __future__ import annotations

import tempfile
from pathlib import Path


def qemu_workdir(prefix: str) -> Path:
    """A new 0755 directory under /var/tmp.

    libvirt runs QEMU as libvirt-qemu, which cannot enter pytest's (or mkdtemp's) 0700
    directories to open disks and console logs.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(0o755)
    return path
