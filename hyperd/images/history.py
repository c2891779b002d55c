"""``docker history``: an image's history entries, newest first, with the local IDs known."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from hyperd.images.errors import ImageError
from hyperd.images.layerstream import open_layer, read_tar
from hyperd.images.manifest import load_json

if TYPE_CHECKING:
    from hyperd.images.service import ImageService

MISSING = "<missing>"


def unix_time(text: str) -> int:
    """Seconds since the epoch of an RFC 3339 time (0 when absent or malformed)."""
    if not text:
        return 0
    base = text.rstrip("Z").split(".", 1)[0].split("+", 1)[0]
    try:
        return int(datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())
    except ValueError:
        return 0


def layer_size(path) -> int:
    """The bytes a layer's regular files hold once unpacked (Docker's layer size)."""
    total = 0
    with open_layer(path) as stream, read_tar(stream) as tar:
        for m in tar:
            if m.isreg():
                total += m.size
    return total


def history(svc: ImageService, ref_or_id: str) -> list[dict]:
    """Docker's history items: Id, Created, CreatedBy, Tags, Size, Comment."""
    rec = svc.resolve(ref_or_id)
    config = load_json(svc.store.read(rec.config_digest), "image config")
    entries = config.get("history") or []
    layers = list(rec.layers)
    if not entries:  # an image without history: one entry per layer
        entries = [{"created": config.get("created", "")} for _ in layers] or [{}]
    items: list[dict] = []
    n = 0
    for h in entries:
        size = 0
        if not h.get("empty_layer"):
            if n >= len(layers):
                raise ImageError(f"image {rec.id[7:19]}: more history entries than layers")
            size = layer_size(svc.store.path(layers[n].digest))
            n += 1
        items.insert(
            0,
            {
                "Id": MISSING,
                "Created": unix_time(h.get("created") or ""),
                "CreatedBy": h.get("created_by") or "",
                "Tags": None,
                "Size": size,
                "Comment": h.get("comment") or "",
            },
        )
    image_id: str | None = rec.id
    for item in items:
        found = svc.index.get(image_id)
        if found is None:
            break
        item["Id"] = found.id
        item["Tags"] = [svc.familiar(t) for t in found.tags] or None
        image_id = svc.index.parent(found.id)
        if image_id is None:
            break
    return items
