"""Merge image layers into one tar stream of the flattened root, packed by mkfs.erofs.

The OCI rules of layerrules.LayerWalker, applied to a tree held in memory, so nothing is
unpacked on disk: erofs-utils >= 1.7 builds the filesystem straight from a tar stream
(``mkfs.erofs --tar=f``), and each byte of file data goes once from a layer blob into the
image::

    layer blob -> open_layer (inflate, hash) -> tarfile (names, budget) -> LayerMerger
                                                                              |
        the merged tree: kinds, symlink targets, what this layer put <--------+
                                                                              v
    image <- mkfs.erofs --tar=f --aufs --ovlfs-strip=1 <- one tar: fresh headers + data

What mkfs.erofs is sent is already checked and normalised:

* each name is a clean path whose parents are directories of the tree: a symlinked parent
  is resolved here (inside the root, as the on-disk LayerApplier does), a missing one is
  sent first as a 0755 root-owned directory;
* an entry at a path replaces what is there, but a directory over a directory keeps its
  contents; mkfs.erofs does the same, as tar extraction does;
* a whiteout is sent as ``.wh.<name>`` beside a name that exists: with ``--aufs``
  mkfs.erofs turns it into an overlayfs whiteout, dropping what was there, and
  ``--ovlfs-strip=1`` leaves none in the image. An opaque directory is sent as one
  whiteout per entry a lower layer put in it;
* a hard link names the resolved path of its target, which exists and is no directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

from hyperd.images.errors import RootfsBuildError
from hyperd.images.layerrules import (
    DIRECTORY,
    MISSING,
    OTHER,
    SYMLINK,
    WHITEOUT_PREFIX,
    LayerWalker,
    resolve_dir,
)
from hyperd.images.layerstream import TAR_BUFSIZE
from hyperd.images.limits import Budget

log = logging.getLogger(__name__)

ZEROS = bytes(TAR_BUFSIZE)
PIPE_BUFSIZE = 1 << 20
_NO_CHILDREN = MappingProxyType({})  # what a file holds: one for all of them, read-only
MAX_DIR_NAMES = 16384  # past this, a build unpacks instead (see WideDirectory)


class WideDirectory(Exception):
    """A directory with more names than mkfs.erofs --tar takes in useful time: it looks
    each new name up in a list (a directory of 40,000 took 3.4 s, 10,000 0.18 s)."""


class _Node:
    """One path of the merged tree: a directory (with children), a symlink, or other."""

    __slots__ = ("kind", "target", "children", "names")

    def __init__(self, kind: str, target: str = ""):
        self.kind = kind
        self.target = target
        self.children: dict[str, _Node] = {} if kind == DIRECTORY else _NO_CHILDREN
        self.names = 0  # names mkfs.erofs has seen in this directory, whiteouts too

    def put(self, name: str, node: _Node) -> None:
        """Make ``node`` this directory's ``name``."""
        if name not in self.children:
            self.names += 1
            if self.names > MAX_DIR_NAMES:
                raise WideDirectory(f"a directory has more than {MAX_DIR_NAMES} names")
        self.children[name] = node


class LayerMerger(LayerWalker):
    """Writes the flattened root of the layers it is given, in order, as one tar to ``out``."""

    def __init__(self, out: BinaryIO, budget: Budget):
        super().__init__(budget)
        self.out = out
        self.root = _Node(DIRECTORY)
        self._now = int(time.time())

    def begin(self) -> None:
        """Start the archive with the root directory (0755, root's) that unpacking makes."""
        self._send(self._made_dir(["."]))

    def finish(self) -> None:
        """End the archive."""
        self.out.write(bytes(2 * tarfile.BLOCKSIZE))
        self.out.flush()

    # -- the tree: in memory -----------------------------------------------------------------

    def resolve(self, parts: list[str], entry: str, create: bool) -> tuple[str, ...] | None:
        """``parts`` resolved to a directory of the tree (layerrules.resolve_dir); missing
        directories are made (and sent) when ``create``, else None is returned."""

        def probe(cur: tuple[str, ...], comp: str) -> tuple[str, str]:
            parent = self._node(cur)
            child = parent.children.get(comp)
            if child is not None:
                return child.kind, child.target
            if not create:
                return MISSING, ""
            parent.put(comp, _Node(DIRECTORY))
            self._send(self._made_dir([*cur, comp]))
            return DIRECTORY, ""

        return resolve_dir(parts, entry, probe)

    def kind_of(self, rel: tuple[str, ...]) -> str:
        node = self._node(rel[:-1]).children.get(rel[-1])
        return MISSING if node is None else node.kind

    def children(self, rel: tuple[str, ...]) -> list[tuple[str, bool]]:
        return [(n, c.kind == DIRECTORY) for n, c in self._node(rel).children.items()]

    def _node(self, rel: tuple[str, ...] | list[str]) -> _Node:
        node = self.root
        for comp in rel:
            node = node.children[comp]
        return node

    # -- entries: sent; mkfs.erofs replaces what a path held, as extraction does -----------

    def root_meta(self, m: tarfile.TarInfo) -> None:
        self._send(_header(".", m))

    def make_dir(self, rel: tuple[str, ...], m: tarfile.TarInfo) -> None:
        parent = self._node(rel[:-1])
        node = parent.children.get(rel[-1])
        if node is None or node.kind != DIRECTORY:
            parent.put(rel[-1], _Node(DIRECTORY))
        self._send(_header("/".join(rel), m))

    def create(self, tar, m, rel: tuple[str, ...], link: tuple[str, ...] | None) -> None:
        parent, name = self._node(rel[:-1]), "/".join(rel)
        if m.isreg():
            parent.put(rel[-1], _Node(OTHER))
            self._send(_header(name, m, tarfile.REGTYPE, size=m.size))
            self._copy(tar, m)
        elif m.issym():
            parent.put(rel[-1], _Node(SYMLINK, m.linkname))
            self._send(_header(name, m, linkname=m.linkname))
        elif m.islnk():
            parent.put(rel[-1], self._node(link))  # the same file, under two names
            self._send(_header(name, m, linkname="/".join(link)))
        elif m.ischr() or m.isblk() or m.isfifo():
            parent.put(rel[-1], _Node(OTHER))
            self._send(_header(name, m))
        else:
            if rel[-1] in parent.children:
                self.remove(rel)
            self.skipped.append(m.name)
            log.warning("skipping layer entry %s of unsupported type %r", m.name, m.type)

    def remove(self, rel: tuple[str, ...]) -> None:
        """Forget ``rel`` and send a whiteout for it (turned into nothing by mkfs.erofs)."""
        del self._node(rel[:-1]).children[rel[-1]]
        info = tarfile.TarInfo("/".join((*rel[:-1], WHITEOUT_PREFIX + rel[-1])))
        info.mtime = self._now
        self._send(info)

    # -- output ----------------------------------------------------------------------------

    def _made_dir(self, rel: list[str]) -> tarfile.TarInfo:
        info = tarfile.TarInfo("/".join(rel))
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, self._now
        return info

    def _send(self, info: tarfile.TarInfo) -> None:
        self.out.write(header_bytes(info))

    def _copy(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        left = m.size
        with tar.extractfile(m) as src:
            while left:
                chunk = src.read(min(left, TAR_BUFSIZE))
                if not chunk:
                    raise tarfile.ReadError(f"{m.name}: unexpected end of data")
                self.out.write(chunk)
                left -= len(chunk)
        pad = -m.size % tarfile.BLOCKSIZE
        if pad:
            self.out.write(ZEROS[:pad])


def _header(
    name: str, m: tarfile.TarInfo, kind: bytes | None = None, size: int = 0, linkname: str = ""
) -> tarfile.TarInfo:
    """A fresh header for ``m`` under ``name``: its type, mode, owner, times, device numbers
    and extended attributes, nothing else of the original (paths were resolved here)."""
    info = tarfile.TarInfo(name)
    info.type = kind or m.type
    info.mode, info.uid, info.gid, info.mtime = m.mode & 0o7777, m.uid, m.gid, m.mtime
    info.size, info.linkname = size, linkname
    info.devmajor, info.devminor = m.devmajor, m.devminor
    info.pax_headers = {k: v for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
    return info


def header_bytes(info: tarfile.TarInfo) -> bytes:
    """``info`` as tar header blocks: one plain ustar block where every field fits (most
    entries; packed here, about five times faster than tarfile), else tarfile's PAX."""
    name = info.name.encode("utf-8", "surrogateescape")
    link = info.linkname.encode("utf-8", "surrogateescape")
    fits = (
        len(name) < 100 and len(link) < 100 and not info.pax_headers
        and type(info.mtime) is int and 0 <= info.mtime < _MAX11
        and 0 <= info.size < _MAX11 and 0 <= info.uid < _MAX7 and 0 <= info.gid < _MAX7
        and 0 <= info.devmajor < _MAX7 and 0 <= info.devminor < _MAX7
    )  # fmt: skip
    if not fits:
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    block = bytearray(
        _USTAR.pack(
            name,
            b"%07o" % info.mode,
            b"%07o" % info.uid,
            b"%07o" % info.gid,
            b"%011o" % info.size,
            b"%011o" % info.mtime,
            b" " * 8,
            info.type,
            link,
            b"ustar",
            b"00",
            b"",
            b"",
            b"%07o" % info.devmajor,
            b"%07o" % info.devminor,
            b"",
        )
    )
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


# name mode uid gid size mtime chksum type linkname magic version uname gname dev dev prefix
_USTAR = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s12x")
_MAX7, _MAX11 = 8**7, 8**11


def merge_layers(
    layer_paths: list[Path],
    out: BinaryIO,
    diff_ids: list[str | None],
    budget: Budget,
    done: Callable[[Path], None] | None = None,
) -> LayerMerger:
    """Write the flattened root of ``layer_paths`` (bottom first) to ``out`` as one tar."""
    merger = LayerMerger(out, budget)
    merger.begin()
    merger.apply_files(layer_paths, diff_ids, done)
    merger.finish()
    return merger


def pack_erofs(
    mkfs: str,
    layer_paths: list[Path],
    img: Path,
    diff_ids: list[str | None],
    budget: Budget,
    workdir: Path,
    done: Callable[[Path], None] | None = None,
) -> None:
    """Build the erofs image ``img`` from the layers with ``mkfs --tar`` reading the merged
    stream; its scratch copy of file data goes under ``workdir``."""
    cmd = [mkfs, "--quiet", "--tar=f", "--aufs", "--ovlfs-strip=1", str(img)]
    env = {**os.environ, "TMPDIR": str(workdir)}
    with tempfile.TemporaryFile(dir=workdir) as err:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, env=env,
            bufsize=PIPE_BUFSIZE,
        )  # fmt: skip
        with contextlib.suppress(OSError):  # a pipe of 64 KiB had each side wait on the other
            fcntl.fcntl(proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BUFSIZE)
        broke = False
        try:
            merge_layers(layer_paths, proc.stdin, diff_ids, budget, done)
            proc.stdin.close()
        except BrokenPipeError:
            broke = True  # mkfs.erofs gave up; its exit status and words say why
        except BaseException:
            proc.kill()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            proc.wait()
        if proc.returncode != 0 or broke:
            err.seek(0)
            words = err.read().decode(errors="replace").strip()[-500:] or "stopped reading"
            raise RootfsBuildError(f"{mkfs} failed ({proc.returncode}): {words}")
