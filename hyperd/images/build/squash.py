"""``--squash``: the layers a build added on its base image, merged into one.

The merge keeps OCI layer semantics: what a later layer deletes disappears, and a whiteout
stays only when it hides something of the base; a directory deleted then made again
becomes opaque. The squashed image has the build's config and history (its steps marked
as empty layers) on the base, with the merged layer.
"""

from __future__ import annotations

import contextlib
import posixpath
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

from hyperd.images.commit import Layer, NewImage, create_image, layer_media_type, lower_tree
from hyperd.images.layer import store_layer
from hyperd.images.layerrules import OPAQUE_MARKER, WHITEOUT_PREFIX
from hyperd.images.layerstream import open_layer
from hyperd.images.manifest import load_json
from hyperd.images.store import ImageRecord
from hyperd.images.tree import Tree, normalize


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/") if top else True


class Merge:
    """The merged entries of plain layer tars (bottom first) over a base ``Tree``."""

    def __init__(self, tars: list[tarfile.TarFile], base: Tree):
        self.tars, self.base = tars, base
        self.entries: dict[str, tuple[int, tarfile.TarInfo]] = {}
        self.whiteouts: dict[str, tarfile.TarInfo] = {}
        self.opaque: dict[str, tarfile.TarInfo] = {}
        for i, tar in enumerate(tars):
            mine: set[str] = set()
            for m in tar.getmembers():
                self._member(i, m, mine)

    def _drop(self, top: str, keep: set[str]) -> None:
        for p in [p for p in self.entries if _under(p, top) and p not in keep]:
            del self.entries[p]
        for table in (self.whiteouts, self.opaque):
            for p in [p for p in table if _under(p, top) and p != top]:
                del table[p]

    def _member(self, i: int, m: tarfile.TarInfo, mine: set[str]) -> None:
        path = normalize(m.name)
        parent, name = posixpath.split(path)
        if name == OPAQUE_MARKER:
            self._drop(parent, mine)
            self.opaque[parent] = m
            return
        if name.startswith(WHITEOUT_PREFIX) and not name.startswith(WHITEOUT_PREFIX * 2):
            target = posixpath.join(parent, name[len(WHITEOUT_PREFIX) :])
            self._drop(target, mine)
            self.entries.pop(target, None)
            if self.base.get(target) is not None:
                self.whiteouts[target] = m
            return
        if path in self.whiteouts and m.isdir():
            self.opaque[path] = m  # deleted, then made again: hide the base's content
        self.whiteouts.pop(path, None)
        self.entries[path] = (i, m)
        mine.add(path)

    def write(self, out: BinaryIO) -> None:
        """The merged layer tar."""
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as dst:
            for path in sorted(self.entries, key=lambda p: p.split("/")):
                i, m = self.entries[path]
                m.name = path
                dst.addfile(m, self.tars[i].extractfile(m) if m.isreg() else None)
            for path, m in sorted(self.whiteouts.items()):
                parent, name = posixpath.split(path)
                m.name = posixpath.join(parent, WHITEOUT_PREFIX + name)
                dst.addfile(m)
            for path, m in sorted(self.opaque.items()):
                m.name = posixpath.join(path, OPAQUE_MARKER)
                m.type, m.size = tarfile.REGTYPE, 0
                dst.addfile(m)


def squash(svc, base: ImageRecord | None, image: ImageRecord) -> ImageRecord:
    """``image`` with the layers it has beyond ``base`` merged into one."""
    skip = len(base.layers) if base is not None else 0
    added = image.layers[skip:]
    if len(added) < 2:
        return image
    work = Path(tempfile.mkdtemp(dir=svc.store.ingest_dir, prefix="squash-"))
    try:
        with contextlib.ExitStack() as stack:
            tars = []
            for n, desc in enumerate(added):
                plain = work / f"{n}.tar"
                with open_layer(svc.store.path(desc.digest)) as src, open(plain, "wb") as f:
                    shutil.copyfileobj(src, f, 1 << 20)
                tars.append(stack.enter_context(tarfile.open(plain, "r:")))
            merge = Merge(tars, lower_tree(svc, base))
            config = load_json(svc.store.read(image.config_digest), "image config")
            history = config.get("history") or []
            steps = [{**h, "empty_layer": True} for h in history[len(lower_history(svc, base)) :]]
            new = NewImage(
                config.get("config") or {},
                created_by=f"merge {image.id} to {base.id if base else 'scratch'}",
                prior_history=steps,
            )
            with svc.writing():
                desc, diff_id = store_layer(svc.store, merge.write, layer_media_type(base))
                new.layer = Layer(desc, diff_id)
                return create_image(svc, base, new)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def lower_history(svc, rec: ImageRecord | None) -> list:
    """The history entries of an image's config ([] for none)."""
    if rec is None:
        return []
    return load_json(svc.store.read(rec.config_digest), "image config").get("history") or []
