"""What an image's flattened filesystem holds, read from its layers without unpacking them.

A :class:`Tree` maps each path (``etc/passwd``, no leading or trailing slash) to its
metadata, after the OCI whiteouts and opaque directories of every layer are applied. It
answers what commit, diff, COPY and ``--chown`` need to know about the lower layers: does a
path exist, is it a directory, where does a symlink lead, what does a small file hold.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hyperd.images.errors import ImageError
from hyperd.images.layerrules import MAX_SYMLINK_HOPS, OPAQUE_MARKER, WHITEOUT_PREFIX
from hyperd.images.layerstream import open_layer, read_tar

DIR, FILE, SYMLINK, LINK, OTHER = "dir", "file", "symlink", "link", "other"


@dataclass(frozen=True)
class Node:
    """One path of the flattened filesystem."""

    kind: str  # dir | file | symlink | link (hard link) | other (device, fifo)
    mode: int
    uid: int
    gid: int
    mtime: float
    size: int = 0
    linkname: str = ""
    layer: int = -1  # index of the layer that holds the content (files)


def normalize(name: str) -> str:
    """A layer entry name or absolute path as a tree key (``./a//b/`` -> ``a/b``)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ImageError(f"path {name!r} contains '..'")
    return "/".join(parts)


def _kind(m: tarfile.TarInfo) -> str:
    if m.isdir():
        return DIR
    if m.isreg():
        return FILE
    if m.issym():
        return SYMLINK
    if m.islnk():
        return LINK
    return OTHER


class Tree:
    """The flattened view of a stack of layers (bottom first)."""

    def __init__(self, layers: Iterable[str | os.PathLike] = ()):
        self.layers = [Path(p) for p in layers]
        self.nodes: dict[str, Node] = {}
        self._children: dict[str, set[str]] = {"": set()}
        for i, path in enumerate(self.layers):
            with open_layer(path) as stream:
                self.apply(stream, i)

    # -- building ---------------------------------------------------------------------

    def apply(self, stream, layer: int) -> None:
        """Apply one uncompressed layer tar stream."""
        mine: set[str] = set()
        try:
            with read_tar(stream) as tar:
                for m in tar:
                    self._entry(m, layer, mine)
        except tarfile.TarError as e:
            raise ImageError(f"corrupt layer archive: {e}") from None

    def _entry(self, m: tarfile.TarInfo, layer: int, mine: set[str]) -> None:
        path = normalize(m.name)
        if not path:
            return
        parent, base = posixpath.split(path)
        if base == OPAQUE_MARKER:
            for child in list(self._children.get(parent, ())):
                key = posixpath.join(parent, child) if parent else child
                if key not in mine:
                    self._remove(key)
            return
        if base.startswith(WHITEOUT_PREFIX):
            if not base.startswith(WHITEOUT_PREFIX * 2):
                target = posixpath.join(parent, base[len(WHITEOUT_PREFIX) :])
                if target not in mine:
                    self._remove(target)
            return
        old = self.nodes.get(path)
        if old is not None and not (old.kind == DIR and m.isdir()):
            self._remove(path)
        self._add_parents(parent, layer)
        self.nodes[path] = Node(
            _kind(m), m.mode & 0o7777, m.uid, m.gid, m.mtime, m.size, m.linkname, layer
        )
        self._children.setdefault(parent, set()).add(base)
        if m.isdir():
            self._children.setdefault(path, set())
        mine.add(path)

    def _add_parents(self, parent: str, layer: int) -> None:
        if not parent or parent in self.nodes:
            return
        grand, base = posixpath.split(parent)
        self._add_parents(grand, layer)
        self.nodes[parent] = Node(DIR, 0o755, 0, 0, 0, layer=layer)
        self._children.setdefault(grand, set()).add(base)
        self._children.setdefault(parent, set())

    def _remove(self, path: str) -> None:
        if self.nodes.pop(path, None) is None:
            return
        for child in self._children.pop(path, set()):
            self._remove(posixpath.join(path, child))
        parent, base = posixpath.split(path)
        self._children.get(parent, set()).discard(base)

    # -- reading ----------------------------------------------------------------------

    def get(self, path: str) -> Node | None:
        """The node at ``path`` (not following a final symlink), or None."""
        return self.nodes.get(normalize(path))

    def is_dir(self, path: str) -> bool:
        """Is ``path``, with every symlink followed, a directory? ("/" is)."""
        resolved = self.resolve(path)
        node = self.nodes.get(resolved)
        return resolved == "" or (node is not None and node.kind == DIR)

    def add_layer(self, path: str | os.PathLike) -> None:
        """Apply one more layer blob on top (a build step's)."""
        self.layers.append(Path(path))
        with open_layer(path) as stream:
            self.apply(stream, len(self.layers) - 1)

    def children(self, path: str) -> list[str]:
        """Names in the directory ``path`` (sorted)."""
        return sorted(self._children.get(normalize(path), ()))

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """``path`` with its symlinks followed inside the root (as in a chroot); from the
        first missing component on, the rest is appended as it is."""
        todo = path.split("/")
        cur: list[str] = []
        hops = 0
        while todo:
            comp = todo.pop(0)
            if comp in ("", "."):
                continue
            if comp == "..":
                if cur:
                    cur.pop()
                continue
            key = "/".join([*cur, comp])
            node = self.nodes.get(key)
            if node is None:
                return "/".join([key, *(t for t in todo if t not in ("", "."))])
            if node.kind == SYMLINK and (todo or follow_last):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise ImageError(f"too many symlinks resolving {path!r}")
                if node.linkname.startswith("/"):
                    cur = []
                todo = node.linkname.split("/") + todo
                continue
            cur.append(comp)
        return "/".join(cur)

    def read(self, path: str, limit: int = 1 << 20) -> bytes | None:
        """A small regular file's content (symlinks followed); None when it is not one."""
        resolved = self.resolve(path)
        node = self.nodes.get(resolved)
        if node is None or node.kind not in (FILE, LINK) or not self.layers:
            return None
        if node.kind == LINK:
            return self.read("/" + node.linkname, limit)
        with (
            open_layer(self.layers[node.layer]) as stream,
            read_tar(stream) as tar,
        ):
            found = None
            for m in tar:
                if m.isreg() and normalize(m.name) == resolved:
                    found = tar.extractfile(m).read(limit)
            return found
