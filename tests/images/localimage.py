"""Local images made directly in an ImageService (no registry), for the image-out tests."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from hyperd.images import ImageService
from hyperd.images.commit import Layer, NewImage, create_image
from hyperd.images.layer import store_layer
from hyperd.images.manifest import DOCKER_LAYER_GZIP
from hyperd.images.store import ImageRecord

from .imagebuilder import Entry, tar_bytes


def add_layer(svc: ImageService, entries: list[Entry]) -> Layer:
    """A gzip layer of ``entries`` in the service's store."""
    raw = tar_bytes(entries)
    with svc.writing():
        desc, diff_id = store_layer(svc.store, lambda out: out.write(raw), DOCKER_LAYER_GZIP)
    return Layer(desc, diff_id)


def local_image(
    svc: ImageService,
    layers: list[list[Entry]],
    config: dict | None = None,
    name: str | None = None,
    parent: ImageRecord | None = None,
    created_by: str = "test layer",
) -> ImageRecord:
    """An image of ``layers`` (bottom first) on ``parent``, tagged ``name`` (last one)."""
    rec = parent
    for i, entries in enumerate(layers):
        new = NewImage(dict(config or {"Cmd": ["sh"]}), add_layer(svc, entries), created_by)
        last = i == len(layers) - 1
        rec = create_image(svc, rec, new, [name] if name and last else [])
    return rec


def changes_tar(tmp: Path, entries: list[Entry]) -> Path:
    """A changes tar as the agent sends it."""
    path = tmp / "changes.tar"
    path.write_bytes(tar_bytes(entries))
    return path


def tar_names(data: bytes) -> list[str]:
    """Entry names of an uncompressed tar."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.name for m in tar.getmembers()]
