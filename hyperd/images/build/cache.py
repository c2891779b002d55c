"""The build cache: (parent image, step key) -> the image the step made (in images.db), and
its pruning (``docker builder prune``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hyperd.images.service import ImageService


def prune(svc: ImageService) -> tuple[list[str], int]:
    """Forget the cache, and remove the step images nothing else needs (no name, no child,
    no container); returns their IDs and the bytes freed."""
    index = svc.index
    candidates = index.cache_images()
    index.cache_clear()
    removed: list[str] = []
    changed = True
    while changed:
        changed = False
        for image_id in sorted(candidates - set(removed)):
            rec = index.get(image_id)
            if rec is None:
                removed.append(image_id)
                continue
            if rec.tags or rec.digests or index.children(image_id) or svc.in_use(image_id):
                continue
            index.delete(image_id)
            removed.append(image_id)
            changed = True
    freed = svc.gc()
    return removed, freed
