"""What a layer entry may be, and the errors that name the layer: shared by every reader
that applies layers (rootfs.LayerApplier on disk, tarmerge.LayerMerger in a tar stream).

Layers follow the OCI image spec: ``.wh.<name>`` deletes ``<name>`` from lower layers,
``.wh..wh..opq`` hides everything a lower layer put in its directory, other ``.wh..wh.``
names are aufs bookkeeping.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from hyperd.images.errors import DigestMismatch, ImageError, UnsafeLayerEntry
from hyperd.images.layerstream import CORRUPT, open_layer, read_tar
from hyperd.images.limits import Budget

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
MAX_SYMLINK_HOPS = 40
MISSING, DIRECTORY, SYMLINK, OTHER = "missing", "directory", "symlink", "other"
Probe = Callable[[tuple[str, ...], str], tuple[str, str]]


def split_name(name: str, what: str = "entry") -> list[str]:
    """The components of a layer entry name; absolute and ``..`` names are refused."""
    if name.startswith("/"):
        raise UnsafeLayerEntry(f"layer {what} {name!r} has an absolute path", entry=name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayerEntry(f"layer {what} {name!r} contains '..'", entry=name)
    return parts


def resolve_dir(parts: list[str], entry: str, probe: Probe) -> tuple[str, ...] | None:
    """``parts`` resolved to a directory inside the root, as a tuple of real components:
    a symlink is followed inside the root (an absolute target restarts at the root, as in
    a chroot); one that climbs above the root, or a loop, is refused. None when a
    component is missing.

    ``probe(dir, name)`` says what ``name`` is in the resolved directory ``dir``:
    ``(DIRECTORY, "")``, ``(SYMLINK, target)``, ``(OTHER, "")`` or ``(MISSING, "")``; a
    caller that wants missing parents made makes it there and answers DIRECTORY.
    """
    cur: list[str] = []
    todo = list(parts)
    hops = 0
    while todo:
        comp = todo.pop(0)
        if comp in ("", "."):
            continue
        if comp == "..":
            if not cur:
                raise UnsafeLayerEntry(
                    f"layer entry {entry!r} resolves outside the root through a symlink",
                    entry=entry,
                )
            cur.pop()
            continue
        kind, target = probe(tuple(cur), comp)
        if kind == MISSING:
            return None
        if kind == SYMLINK:
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise UnsafeLayerEntry(f"too many symlinks resolving {entry!r}", entry=entry)
            if target.startswith("/"):
                cur = []
            todo = target.split("/") + todo
        elif kind == DIRECTORY:
            cur.append(comp)
        else:
            raise ImageError(f"layer entry {entry!r}: {'/'.join(cur + [comp])} is not a dir")
    return tuple(cur)


def check_symlink(name: str, parts: list[str], target: str) -> None:
    """Refuse a symlink whose relative target climbs above the root from where it is."""
    if target.startswith("/"):
        return
    lexical = posixpath.normpath(posixpath.join("/".join(parts[:-1]), target))
    if lexical == ".." or lexical.startswith("../"):
        raise UnsafeLayerEntry(
            f"symlink {name!r} -> {target!r} points outside the root", entry=name
        )


def layer_name(path: str | os.PathLike) -> str:
    """How errors name a layer blob: ``layer <first 12 of its digest>``."""
    return f"layer {os.path.basename(path)[:12]}"


def corrupt(budget: Budget, error: Exception) -> ImageError:
    """The error for a layer that cannot be read as a tar."""
    return ImageError(f"{budget.where()} is corrupt: {error}")


def check_diff_id(budget: Budget, digest: str, diff_id: str | None) -> None:
    """Refuse a layer whose uncompressed digest is not the image config's ``diff_id``."""
    if diff_id and diff_id != digest:
        raise DigestMismatch(
            f"{budget.where()} has uncompressed digest {digest}, the image config says {diff_id}"
        )


class LayerWalker:
    """Applies layers, in order, by the OCI rules; subclasses say what applying an entry
    does (rootfs.LayerApplier: on a directory; tarmerge.LayerMerger: into a tar stream).

    A subclass answers ``resolve`` (layerrules.resolve_dir over its own tree), ``kind_of``
    and ``children``, and acts in ``root_meta``, ``make_dir``, ``create`` (which replaces
    what is at the path) and ``remove``. Paths are tuples of resolved components.
    """

    def __init__(self, budget: Budget):
        self.budget = budget
        self.skipped: list[str] = []
        self._layer: set[tuple[str, ...]] = set()  # what this layer put, with its parents

    def resolve(self, parts: list[str], entry: str, create: bool) -> tuple[str, ...] | None:
        raise NotImplementedError

    def kind_of(self, rel: tuple[str, ...]) -> str:
        raise NotImplementedError

    def children(self, rel: tuple[str, ...]) -> Iterable[tuple[str, bool]]:
        """(name, is a directory) of what the directory ``rel`` holds."""
        raise NotImplementedError

    def root_meta(self, m: tarfile.TarInfo) -> None:
        raise NotImplementedError

    def make_dir(self, rel: tuple[str, ...], m: tarfile.TarInfo) -> None:
        raise NotImplementedError

    def create(self, tar, m, rel: tuple[str, ...], link: tuple[str, ...] | None) -> None:
        """Put the entry ``m`` (no directory) at ``rel`` in place of what is there; a hard
        link's checked target is ``link``."""
        raise NotImplementedError

    def remove(self, rel: tuple[str, ...]) -> None:
        raise NotImplementedError

    def apply(self, stream: BinaryIO) -> None:
        """Apply one uncompressed layer tar stream."""
        self._layer = set()
        try:
            with read_tar(stream) as tar:
                for member in tar:
                    self._entry(tar, member)
        except tarfile.TarError as e:
            raise corrupt(self.budget, e) from None

    def apply_file(self, path: str | os.PathLike, diff_id: str | None = None) -> None:
        """Apply one layer blob (compressed or not), checking its ``diff_id`` if given."""
        self.budget.start_layer(layer_name(path), os.path.getsize(path))
        try:
            with open_layer(path, hashed=True) as stream:
                self.apply(stream)
                stream.drain()
        except CORRUPT as e:
            raise corrupt(self.budget, e) from None
        check_diff_id(self.budget, stream.digest(), diff_id)

    def apply_files(
        self,
        paths: Iterable[str | os.PathLike],
        diff_ids: Iterable[str | None],
        done: Callable[[Path], None] | None = None,
    ) -> None:
        """Apply layer blobs bottom first, each with its ``diff_id`` (taken one at a time,
        so a pull's layers are read as they arrive); ``done(path)`` after each."""
        for path, diff_id in zip(paths, diff_ids, strict=True):
            self.apply_file(path, diff_id)
            if done is not None:
                done(Path(path))

    def _entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = split_name(m.name)
        self.budget.spend(m, len(parts))
        if not parts:
            if m.isdir():
                self.root_meta(m)
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts, m.name)
            return
        rel = (*self.resolve(parts[:-1], m.name, create=True), base)
        if m.isdir():
            self.make_dir(rel, m)
        else:
            if m.issym():
                check_symlink(m.name, parts, m.linkname)
            self.create(tar, m, rel, self._link_target(m, rel) if m.islnk() else None)
        self._mark(rel)

    def _link_target(self, m: tarfile.TarInfo, rel: tuple[str, ...]) -> tuple[str, ...]:
        tparts = split_name(m.linkname, "hard link target")
        if not tparts:
            raise UnsafeLayerEntry(f"hard link {m.name!r} points at the root", entry=m.name)
        parent = self.resolve(tparts[:-1], m.name, create=False)
        target = None if parent is None else (*parent, tparts[-1])
        if target is None or target == rel or self.kind_of(target) == MISSING:
            raise ImageError(f"hard link {m.name!r}: target {m.linkname!r} does not exist")
        if self.kind_of(target) == DIRECTORY:
            raise UnsafeLayerEntry(f"hard link {m.name!r} to a directory", entry=m.name)
        return target

    def _whiteout(self, parts: list[str], name: str) -> None:
        parent = self.resolve(parts[:-1], name, create=parts[-1] == OPAQUE_MARKER)
        if parent is None:
            return
        base = parts[-1]
        if base == OPAQUE_MARKER:
            self._mark(parent)
            self._clear_lower(parent)
        elif base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk etc.), not a whiteout
        else:
            target = base[len(WHITEOUT_PREFIX) :]
            if target in ("", ".", ".."):
                raise UnsafeLayerEntry(f"whiteout {name!r} names no entry", entry=name)
            rel = (*parent, target)
            if rel not in self._layer and self.kind_of(rel) != MISSING:
                self.remove(rel)

    def _clear_lower(self, rel: tuple[str, ...]) -> None:
        """Remove what lower layers put under ``rel``, keeping this layer's entries."""
        for name, is_dir in list(self.children(rel)):
            child = (*rel, name)
            if child not in self._layer:
                self.remove(child)
            elif is_dir:
                self._clear_lower(child)

    def _mark(self, rel: tuple[str, ...]) -> None:
        for i in range(1, len(rel) + 1):
            self._layer.add(rel[:i])
