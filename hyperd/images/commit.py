"""New local images from old ones: a config, optionally one more layer, a history entry.

``create_image`` is what commit, import and every build step share: it writes the config
and manifest blobs, records the image (with its local parent) and names it.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hyperd.images.layer import Changes, store_layer
from hyperd.images.manifest import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    load_json,
    parse_manifest,
)
from hyperd.images.pull import dumps, record_from_config
from hyperd.images.reference import parse_reference
from hyperd.images.store import ImageRecord
from hyperd.images.tree import Tree

if TYPE_CHECKING:
    from hyperd.images.service import ImageService

_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def now_rfc3339() -> str:
    """The current time as Docker writes it in image configs."""
    t = time.time_ns()
    stamp = datetime.fromtimestamp(t // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{t % 1_000_000_000:09d}Z"


@dataclass
class Layer:
    """A layer just written to the content store."""

    desc: Descriptor
    diff_id: str


@dataclass
class NewImage:
    """What differs from the parent: the runtime config, the layer, the history entry."""

    config: dict
    layer: Layer | None = None
    created_by: str = ""
    comment: str = ""
    author: str = ""
    created: str = field(default_factory=now_rfc3339)
    top: dict = field(default_factory=dict)  # more top-level config keys (container, …)
    prior_history: list[dict] = field(default_factory=list)  # entries before this one's


def _types(parent_manifest_type: str | None) -> tuple[str, str, str]:
    if parent_manifest_type == OCI_MANIFEST:
        return OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP
    return DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP


def layer_media_type(parent: ImageRecord | None) -> str:
    """The media type a new layer on ``parent`` gets (its manifest's family)."""
    return _types(parent.media_type if parent else None)[2]


def create_image(
    svc: ImageService, parent: ImageRecord | None, new: NewImage, names: list[str] = ()
) -> ImageRecord:
    """Write and record the image ``new`` on ``parent`` (None: a base image); tag ``names``."""
    store = svc.store
    base = load_json(store.read(parent.config_digest), "image config") if parent else {}
    layers = list(parent.layers) if parent else []
    diff_ids = list((base.get("rootfs") or {}).get("diff_ids") or [])
    history = list(base.get("history") or [])
    entry = {"created": new.created, "created_by": new.created_by}
    if new.author:
        entry["author"] = new.author
    if new.comment:
        entry["comment"] = new.comment
    if new.layer is not None:
        layers.append(new.layer.desc)
        diff_ids.append(new.layer.diff_id)
    else:
        entry["empty_layer"] = True
    history += [*new.prior_history, entry]
    config = {
        "architecture": base.get("architecture") or _ARCH.get(platform.machine(), "amd64"),
        "os": base.get("os") or "linux",
        **({"variant": base["variant"]} if base.get("variant") else {}),
        **({"author": new.author} if new.author else {}),
        **({"comment": new.comment} if new.comment else {}),
        **new.top,
        "config": new.config,
        "created": new.created,
        "history": history,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    mtype, ctype, _ = _types(parent.media_type if parent else None)
    raw_config = dumps(config)
    refs = [(str(parse_reference(n)), "tag") for n in names]
    with store.lease([d.digest for d in layers]):
        config_digest = store.write(raw_config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": mtype,
            "config": Descriptor(ctype, config_digest, len(raw_config)).to_dict(),
            "layers": [d.to_dict() for d in layers],
        }
        raw_manifest = dumps(manifest)
        manifest_digest = store.write(raw_manifest)
        parse_manifest(raw_manifest)
        rec = record_from_config(config_digest, config, manifest_digest, mtype, layers)
        rec.added = time.time()
        svc.index.put(rec, refs)
        if parent is not None:
            svc.index.set_parent(rec.id, parent.id)
    return svc.index.get(rec.id)


def lower_tree(svc: ImageService, rec: ImageRecord | None) -> Tree:
    """The flattened filesystem of an image (empty for none)."""
    if rec is None:
        return Tree()
    return Tree([svc.store.path(d.digest) for d in rec.layers])


def commit_changes(
    svc: ImageService,
    parent: ImageRecord,
    changes_tar: Path,
    new: NewImage,
    names=(),
    lower: Tree | None = None,
) -> ImageRecord:
    """A container's changes tar (the agent's) on ``parent`` as a new image; ``lower`` is
    the parent's tree when the caller has it already."""
    changes = Changes(changes_tar, lower if lower is not None else lower_tree(svc, parent))
    changes.check_committable()
    with svc.writing():
        desc, diff_id = store_layer(svc.store, changes.write_tar, layer_media_type(parent))
        new.layer = Layer(desc, diff_id)
        return create_image(svc, parent, new, list(names))
