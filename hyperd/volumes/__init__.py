"""Named volumes: each a sparse ext4 disk image under ``<root>/volumes/<name>/``, attached to a
container's VM as a virtio-blk disk and mounted by the agent at its target.

An ext4 filesystem cannot be mounted by two kernels at once, so a volume is attached
read-write to at most one running VM (read-only to any number while nobody writes it).
"""

from .snapshots import Snapshot
from .store import Volume, VolumeStore

__all__ = ["Snapshot", "Volume", "VolumeStore"]
