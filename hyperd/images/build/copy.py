"""COPY and ADD: a layer made on the host from context files (or another stage's files).

Docker's rules: a directory source copies its contents, not itself; a destination ending
in ``/``, an existing directory, or several sources make the destination a directory;
missing parent directories are created (0755); files belong to 0:0 unless ``--chown``; ADD
unpacks a local tar archive (plain or compressed) into the destination. The destination
is resolved in the image, following its symlinks, so entries land at real paths.
"""

from __future__ import annotations

import lzma
import posixpath
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from hyperd.errors import InvalidArgument
from hyperd.images.importer import decompressed
from hyperd.images.tree import DIR, Tree, normalize

from .context import Source, walk


@dataclass
class Owner:
    """--chown, resolved to numbers (None: keep 0:0)."""

    uid: int = 0
    gid: int = 0


def _id_of(name: str, table: bytes | None, what: str) -> int:
    if name.isdigit():
        return int(name)
    for line in (table or b"").decode(errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    raise InvalidArgument(f"unable to convert {what} {name!r} to an ID: no such {what}")


def resolve_owner(spec: str, tree: Tree) -> Owner:
    """``--chown=user[:group]`` by name (the image's /etc/passwd, /etc/group) or number."""
    user, _, group = spec.partition(":")
    if not user:
        raise InvalidArgument(f"invalid --chown value {spec!r}")
    uid = _id_of(user, None if user.isdigit() else tree.read("/etc/passwd"), "user")
    if not group:
        return Owner(uid, uid)
    gid = _id_of(group, None if group.isdigit() else tree.read("/etc/group"), "group")
    return Owner(uid, gid)


def is_archive(path: Path) -> bool:
    """Does ADD unpack this file (a tar, plain or gzip/bzip2/xz compressed)?"""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return True
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return True  # zstd
    return len(head) == 512 and head[257:262] == b"ustar"


class CopyLayer:
    """The entries of one COPY/ADD, written as a layer tar by ``write``."""

    def __init__(
        self,
        sources: list[Source],
        dest: str,
        tree: Tree,
        workdir: str = "/",
        owner: Owner | None = None,
        unpack: bool = False,
    ):
        self.sources, self.tree, self.unpack = sources, tree, unpack
        self.owner = owner or Owner()
        self.mtime = time.time()
        if not dest.startswith("/"):
            dest = posixpath.join(workdir or "/", dest)
        many = len(sources) > 1
        if many and not dest.endswith("/"):
            raise InvalidArgument(
                "When using COPY with more than one source file, the destination must be a "
                "directory and end with a /"
            )
        self.target = tree.resolve(dest)
        into_dir = dest.endswith("/") or many or tree.is_dir(dest)
        self.into_dir = into_dir or any(s.path.is_dir() for s in sources)

    def write(self, out: BinaryIO) -> None:
        """Write the layer tar to ``out``."""
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            made: set[str] = set()
            base = self.target if self.into_dir else posixpath.dirname(self.target)
            self._parents(tar, base, made, include_self=self.into_dir)
            for src in self.sources:
                self._source(tar, src, made)

    def _parents(self, tar, path: str, made: set[str], include_self: bool) -> None:
        """Directory entries for the components of ``path`` the image lacks."""
        parts = normalize(path).split("/") if normalize(path) else []
        upto = len(parts) if include_self else len(parts) - 1
        for i in range(1, upto + 1):
            sub = "/".join(parts[:i])
            if sub in made or self.tree.get(sub) is not None:
                continue
            info = tarfile.TarInfo(sub)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, self.mtime
            info.uid, info.gid = self.owner.uid, self.owner.gid
            tar.addfile(info)
            made.add(sub)

    def _source(self, tar, src: Source, made: set[str]) -> None:
        if src.path.is_dir() and not src.path.is_symlink():
            for path, rel in walk(src.path, ""):
                if rel:
                    self._add(tar, path, posixpath.join(self.target, rel), made)
            return
        if self.unpack and src.path.is_file() and is_archive(src.path):
            self._unpack(tar, src.path, made)
            return
        name = posixpath.join(self.target, src.path.name) if self.into_dir else self.target
        self._add(tar, src.path, name, made)

    def _add(self, tar, path: Path, name: str, made: set[str]) -> None:
        name = normalize(name)
        self._parents(tar, name, made, include_self=False)
        info = tar.gettarinfo(str(path), arcname=name)
        if not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
            return  # devices, fifos and sockets of a context are not copied
        info.uid, info.gid, info.uname, info.gname = self.owner.uid, self.owner.gid, "", ""
        if info.isdir():
            made.add(name)
        if info.isreg():
            with open(path, "rb") as f:
                tar.addfile(info, f)
        else:
            tar.addfile(info)

    def _unpack(self, tar, archive: Path, made: set[str]) -> None:
        self._parents(tar, self.target, made, include_self=True)
        try:
            with (
                open(archive, "rb") as raw,
                tarfile.open(fileobj=decompressed(raw), mode="r|") as src,
            ):
                for m in src:
                    rel = normalize(m.name)
                    if not rel:
                        continue
                    m.name = posixpath.join(normalize(self.target), rel).strip("/")
                    if m.islnk():
                        m.linkname = posixpath.join(self.target, normalize(m.linkname))
                    if m.isdir():
                        made.add(m.name)
                    tar.addfile(m, src.extractfile(m) if m.isreg() else None)
        except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zstandard.ZstdError) as e:
            raise InvalidArgument(f"ADD {archive.name}: cannot unpack the archive: {e}") from None


def missing_dir(tree: Tree, path: str) -> str | None:
    """WORKDIR: the real path to create when the image lacks the directory ``path``."""
    resolved = tree.resolve(path)
    node = tree.nodes.get(resolved)
    if resolved == "" or (node is not None and node.kind == DIR):
        return None
    if node is not None:
        raise InvalidArgument(f"WORKDIR {path}: it exists and is not a directory")
    return "/" + resolved


def source_kind(sources: list[Source]) -> str:
    """Docker's word for what a COPY took: ``file``, ``dir`` or ``multi``."""
    if len(sources) > 1:
        return "multi"
    return "dir" if sources and sources[0].path.is_dir() else "file"
