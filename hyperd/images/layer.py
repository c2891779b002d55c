"""A container's layer of changes: filtered, listed as ``docker diff`` does, and stored.

The agent sends the overlay upper directory as an OCI layer tar (whiteouts as ``.wh.NAME``,
opaque directories as ``DIR/.wh..wh..opq``). Part of it is the agent's, not the user's:
``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf`` (Docker bind-mounts these, so they
never reach its layers), the ``/proc``, ``/sys`` and ``/dev`` mount points, and directories
copied up only because such a file was written under them. :class:`Changes` drops those,
refuses device nodes (and, for a commit, sockets), then answers ``diff`` or writes the layer
into the content store.
"""

from __future__ import annotations

import gzip
import hashlib
import posixpath
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hyperd.errors import InvalidArgument
from hyperd.images.layerrules import OPAQUE_MARKER, WHITEOUT_PREFIX
from hyperd.images.manifest import Descriptor
from hyperd.images.store import ContentStore
from hyperd.images.tree import DIR, Tree, normalize

AGENT_FILES = frozenset({"etc/hosts", "etc/hostname", "etc/resolv.conf"})
AGENT_MOUNTS = frozenset({"proc", "sys", "dev"})
SOCKET_RECORD = "HYPER.socket"
CHANGED, ADDED, DELETED = 0, 1, 2  # Docker's change kinds
GZIP_LEVEL = 6


class UncommittableEntry(InvalidArgument):
    """The container's changes hold what a layer may not carry (a device node, a socket)."""


@dataclass
class Entry:
    """One member of the changes tar, with what it means."""

    member: tarfile.TarInfo
    path: str  # normalized; for a whiteout, the path it deletes
    whiteout: bool = False
    opaque: bool = False  # the opaque marker of directory ``path``
    socket: bool = False  # stands for a socket (the agent's PAX record HYPER.socket)


def _classify(m: tarfile.TarInfo) -> Entry:
    path = normalize(m.name)
    parent, base = posixpath.split(path)
    if base == OPAQUE_MARKER:
        return Entry(m, parent, opaque=True)
    if base.startswith(WHITEOUT_PREFIX) and not base.startswith(WHITEOUT_PREFIX * 2):
        return Entry(m, posixpath.join(parent, base[len(WHITEOUT_PREFIX) :]), whiteout=True)
    return Entry(m, path, socket=m.pax_headers.get(SOCKET_RECORD) == "1")


def _agents(path: str) -> bool:
    return path in AGENT_FILES or path.split("/", 1)[0] in AGENT_MOUNTS


class Changes:
    """The filtered changes of a container over its image's tree ``lower``."""

    def __init__(self, tar_path: str | Path, lower: Tree):
        self.tar_path = Path(tar_path)
        self.lower = lower
        with tarfile.open(self.tar_path, "r:") as tar:
            entries = [_classify(m) for m in tar.getmembers()]
        self.entries = self._keep(entries)

    def _keep(self, entries: list[Entry]) -> list[Entry]:
        kept = []
        for e in entries:
            if not e.path or _agents(e.path):
                continue
            if e.member.ischr() or e.member.isblk():
                raise UncommittableEntry(
                    f"cannot commit /{e.path}: it is a device node (a layer of changes "
                    "may not hold device nodes; remove it first)"
                )
            kept.append(e)
        live: set[str] = set()  # directories holding something that stays
        for e in kept:
            if not e.member.isdir() or self._changed_dir(e):
                parent = e.path if e.opaque else posixpath.dirname(e.path)
                while parent and parent not in live:
                    live.add(parent)
                    parent = posixpath.dirname(parent)
        return [e for e in kept if not e.member.isdir() or e.path in live or self._changed_dir(e)]

    def _changed_dir(self, e: Entry) -> bool:
        """A directory the user made or changed (not one only copied up from below)."""
        node = self.lower.get(e.path)
        m = e.member
        if node is None or node.kind != DIR:
            return True
        return (node.mode, node.uid, node.gid) != (m.mode & 0o7777, m.uid, m.gid)

    @staticmethod
    def _same_dir(node, m: tarfile.TarInfo) -> bool:
        """Docker's test for a directory that did not change itself: mode and mtime."""
        return (
            node.kind == DIR
            and m.isdir()
            and node.mode == m.mode & 0o7777
            and int(node.mtime) == int(m.mtime)
        )

    # -- docker diff -----------------------------------------------------------------------

    def diff(self) -> list[dict]:
        """Docker's change list: ``[{"Path": "/x", "Kind": 0|1|2}]``, in Docker's order."""
        out: list[dict] = []
        recorded: set[str] = set()
        for e in sorted(self.entries, key=lambda e: e.path.split("/")):
            if e.opaque:
                continue
            if e.whiteout:
                kind = DELETED
            else:
                node = self.lower.get(e.path)
                kind = ADDED if node is None else CHANGED
                if kind == CHANGED and self._same_dir(node, e.member):
                    continue  # only the parent of something changed below
                if e.member.isdir():
                    recorded.add(e.path)
            parent = posixpath.dirname(e.path)
            if kind != CHANGED and parent and parent not in recorded:
                out.append({"Path": "/" + parent, "Kind": CHANGED})
                recorded.add(parent)
            out.append({"Path": "/" + e.path, "Kind": kind})
        return out

    # -- the layer -------------------------------------------------------------------------

    def check_committable(self) -> None:
        """A layer cannot carry sockets (tar has no type for them): refuse, naming one."""
        for e in self.entries:
            if e.socket:
                raise UncommittableEntry(
                    f"cannot commit /{e.path}: it is a socket (a layer of changes may not hold "
                    "sockets; remove it first, or stop what listens on it)"
                )

    def write_tar(self, out: BinaryIO) -> None:
        """Write the kept entries as an uncompressed layer tar to ``out`` (sockets left out,
        as ``docker export`` leaves them out)."""
        paths = {e.member.name for e in self.entries}
        with (
            tarfile.open(self.tar_path, "r:") as src,
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as dst,
        ):
            for e in self.entries:
                m = e.member
                if e.socket or (m.islnk() and m.linkname not in paths):
                    continue  # a socket, or a link whose target was the agent's
                dst.addfile(m, src.extractfile(m) if m.isreg() else None)

    @property
    def empty(self) -> bool:
        """Nothing changed (the layer would hold no entry)."""
        return not self.entries


class _HashingWriter:
    """Hashes what passes through to ``inner`` (the diff_id of a layer being compressed)."""

    def __init__(self, inner: BinaryIO):
        self.inner = inner
        self.hash = hashlib.sha256()

    def write(self, data) -> int:
        self.hash.update(data)
        return self.inner.write(data)

    def flush(self) -> None:
        self.inner.flush()


def store_layer(
    store: ContentStore, fill: Callable[[BinaryIO], None], media_type: str
) -> tuple[Descriptor, str]:
    """Write a gzip layer into the store: ``fill`` writes its uncompressed tar.

    Returns the layer's descriptor and its diff_id.
    """
    with store.ingest() as f:
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as gz:
            raw = _HashingWriter(gz)
            fill(raw)
        size = f.tell()
    return Descriptor(media_type, f.digest, size), "sha256:" + raw.hash.hexdigest()
