"""A local file or tree as a tar stream (PAX), produced chunk by chunk while it is sent:
headers from Python's tarfile, file data read in pieces, so no file is ever held whole.

Entries are what Docker's archiver writes: modes with their setuid/setgid/sticky bits,
numeric owners, whole-second mtimes, symlinks as links, hard links once, devices and
fifos; sockets are left out; ``security.capability`` travels as a PAX xattr record.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator

from hyperctl.archive.paths import os_error

CHUNK = 64 * 1024
BLOCK = tarfile.BLOCKSIZE
_CAPABILITY = "security.capability"
_TYPES = (
    (stat.S_ISDIR, tarfile.DIRTYPE),
    (stat.S_ISLNK, tarfile.SYMTYPE),
    (stat.S_ISCHR, tarfile.CHRTYPE),
    (stat.S_ISBLK, tarfile.BLKTYPE),
    (stat.S_ISFIFO, tarfile.FIFOTYPE),
)


class Packer:
    """The tar stream of one source path, under a chosen archive name."""

    def __init__(self, path: str, name: str):
        self.path = path
        self.name = name
        self.links: dict[tuple[int, int], str] = {}
        self.sent = 0  # bytes of archive produced so far
        self._buf = bytearray()

    def chunks(self) -> Iterator[bytes]:
        """The archive, in chunks of about 64 KiB."""
        yield from self._entry(self.path, self.name)
        self._buf += b"\0" * (2 * BLOCK)  # the end-of-archive marker
        yield from self._flush(0)

    def _flush(self, keep: int = CHUNK) -> Iterator[bytes]:
        if len(self._buf) >= keep and self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            self.sent += len(data)
            yield data

    def _entry(self, path: str, name: str) -> Iterator[bytes]:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return  # gone meanwhile, as Docker's archiver skips it
        except OSError as e:
            raise os_error(e) from None
        if stat.S_ISSOCK(st.st_mode):
            return
        info = self._header(path, name, st)
        self._buf += info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        if info.type == tarfile.REGTYPE and info.size:
            yield from self._data(path, info.size)
        yield from self._flush()
        if info.type == tarfile.DIRTYPE:
            try:
                children = sorted(os.listdir(path))
            except OSError as e:
                raise os_error(e, "open") from None
            for child in children:
                yield from self._entry(os.path.join(path, child), f"{name}/{child}")

    def _header(self, path: str, name: str, st: os.stat_result) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        info.type = next((kind for test, kind in _TYPES if test(st.st_mode)), tarfile.REGTYPE)
        if info.type == tarfile.SYMTYPE:
            info.linkname = _readlink(path)
        elif info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif info.type == tarfile.REGTYPE:
            first = self.links.setdefault((st.st_dev, st.st_ino), name) if st.st_nlink > 1 else name
            if first != name:
                info.type, info.linkname = tarfile.LNKTYPE, first
            else:
                info.size = st.st_size
        capability = _capability(path)
        if capability is not None:
            info.pax_headers["SCHILY.xattr." + _CAPABILITY] = capability
        return info

    def _data(self, path: str, size: int) -> Iterator[bytes]:
        """Exactly ``size`` bytes of the file (zeros if it shrank meanwhile), then padding."""
        left = size
        try:
            with open(path, "rb") as f:
                while left:
                    piece = f.read(min(CHUNK, left))
                    if not piece:
                        break
                    self._buf += piece
                    left -= len(piece)
                    yield from self._flush()
        except OSError as e:
            raise os_error(e, "open") from None
        self._buf += b"\0" * (left + (-size % BLOCK))


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError as e:
        raise os_error(e, "readlink") from None


def _capability(path: str) -> str | None:
    try:
        value = os.getxattr(path, _CAPABILITY, follow_symlinks=False)
    except OSError:
        return None  # none, or a file system without xattrs
    return value.decode("utf-8", "surrogateescape")
