"""``docker container prune`` and the disk space a container takes."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from hyperd.errors import Conflict, NotFound

if TYPE_CHECKING:
    from .service import ContainerService


async def prune(svc: ContainerService, labels: list[str], until: float | None):
    """Remove every stopped container (matching the filters); (IDs, bytes freed)."""
    removed, freed = [], 0
    for c in svc.store.list(all_=True, filters={"label": labels} if labels else None):
        if c.running or (until is not None and c.created_unix >= until):
            continue
        size = await asyncio.to_thread(dir_size, svc.dir(c))
        with contextlib.suppress(NotFound, Conflict):
            await svc.remove(c.id)
            removed.append(c.id)
            freed += size
    svc.events.publish("container", "prune", "", reclaimed=freed)
    return removed, freed


def dir_size(path: Path) -> int:
    """Bytes a directory holds on disk (sparse files count what they use)."""
    total = 0
    for p in path.rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file():
                total += p.stat().st_blocks * 512
    return total
