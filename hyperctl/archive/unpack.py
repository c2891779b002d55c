"""A tar stream extracted under a local directory, entry by entry as it arrives (Python's
tarfile in stream mode), the way Docker's client extracts ``docker cp`` archives: modes and
times kept, owners not (files belong to whoever runs ``hyper cp``), missing parent
directories made 0755, an existing directory never replaced by a non-directory nor the
reverse.

Nothing may land outside the destination: a name with ``..`` that climbs out, a hard link
to a path outside, a relative symlink whose target climbs out, and any path whose parent
is reached through a symlink are all refused (every path is opened component by component
with ``O_NOFOLLOW``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable
from typing import BinaryIO

from hyperctl.archive.paths import CopyError

CHUNK = 64 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_XATTR = "SCHILY.xattr."
_DEVICES = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK}


def _inside(name: str) -> str | None:
    """``name`` cleaned, relative to the destination ("" for itself), or None when it climbs
    out (an absolute name stays inside, as Docker joins it to the destination)."""
    cleaned = posixpath.normpath(name) if name else "."
    if cleaned.startswith("/"):
        cleaned = cleaned.lstrip("/") or "."
    if cleaned == ".." or cleaned.startswith("../"):
        return None
    return "" if cleaned == "." else cleaned


class Extractor:
    """Extraction of tar streams under the directory ``dest``; ``rename`` maps each entry's
    name (and a hard link's target) before anything else."""

    def __init__(self, dest: str, rename: Callable[[str], str] = lambda name: name):
        self.dest = dest
        self.rename = rename
        self._dirs: list[tuple[str, int, int]] = []  # (path, atime ns, mtime ns)

    def extract(self, fileobj: BinaryIO) -> None:
        """Read the whole stream and extract it."""
        try:
            root = os.open(self.dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise CopyError(f"open {self.dest}: {(e.strerror or str(e)).lower()}") from None
        try:
            with tarfile.open(fileobj=fileobj, mode="r|", errors="surrogateescape") as tar:
                while (member := tar.next()) is not None:
                    tar.members.clear()  # nothing kept per entry: any size of tree
                    self._entry(root, tar, member)
            self._directory_times(root)
        except tarfile.TarError as e:
            raise CopyError(f"reading the archive: {e}") from None
        finally:
            os.close(root)

    def _directory_times(self, root: int) -> None:
        """Directories' times, set last: what was extracted in them changed them."""
        for path, atime, mtime in reversed(self._dirs):
            self._at(root, path, lambda parent, leaf, a=atime, m=mtime: _utime(parent, leaf, a, m))

    def _entry(self, root: int, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        name = _inside(self.rename(m.name))
        if name is None:
            raise CopyError(f'refusing entry "{m.name}": it leads outside {self.dest}')
        if not name:
            return  # the destination itself (".")
        if m.issym() and _inside(posixpath.join(posixpath.dirname(name), m.linkname)) is None:
            raise CopyError(f'refusing entry "{m.name}": its link leads outside {self.dest}')
        self._at(root, name, lambda parent, leaf: self._create(root, parent, leaf, name, tar, m))

    def _at(self, root: int, path: str, action: Callable[[int, str], None]) -> None:
        """Run ``action(parent_fd, leaf)`` for ``path``, its parents made (0755) or opened
        without following a symlink."""
        parts = path.split("/")
        fd = os.dup(root)
        try:
            for part in parts[:-1]:
                sub = _subdir(fd, part, path)
                os.close(fd)
                fd = sub
            action(fd, parts[-1])
        except OSError as e:
            raise CopyError(f"{posixpath.join(self.dest, path)}: {e.strerror or e}") from None
        finally:
            os.close(fd)

    def _create(self, root, parent: int, leaf: str, name: str, tar, m: tarfile.TarInfo) -> None:
        if not _replace_existing(parent, leaf, m.isdir(), posixpath.join(self.dest, name)):
            if m.isdir():
                os.mkdir(leaf, 0o700, dir_fd=parent)
            elif m.isreg():
                _write_file(parent, leaf, tar.extractfile(m))
            elif m.issym():
                os.symlink(m.linkname, leaf, dir_fd=parent)
            elif m.islnk():
                self._link(root, parent, leaf, m)
                return  # a hard link shares its target's metadata
            elif m.type in _DEVICES:
                device = os.makedev(m.devmajor, m.devminor)
                os.mknod(leaf, _DEVICES[m.type] | 0o600, device, dir_fd=parent)
            elif m.isfifo():
                os.mkfifo(leaf, 0o600, dir_fd=parent)
            else:
                raise CopyError(f'unhandled type of tar entry "{m.name}"')
        _metadata(parent, leaf, m)
        if m.isdir():
            self._dirs.append((name, *_times(m)))

    def _link(self, root: int, parent: int, leaf: str, m: tarfile.TarInfo) -> None:
        target = _inside(self.rename(m.linkname))
        if not target:
            raise CopyError(f'refusing entry "{m.name}": its link leads outside {self.dest}')

        def link(target_parent: int, target_leaf: str) -> None:
            os.link(
                target_leaf,
                leaf,
                src_dir_fd=target_parent,
                dst_dir_fd=parent,
                follow_symlinks=False,
            )

        self._at(root, target, link)


def _subdir(fd: int, part: str, path: str) -> int:
    """The directory ``part`` under ``fd``, made when missing, never through a symlink."""
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        os.mkdir(part, 0o755, dir_fd=fd)
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise CopyError(f'refusing entry "{path}": {part} is not a directory') from None
        raise


def _replace_existing(parent: int, leaf: str, is_dir: bool, shown: str) -> bool:
    """Clear the way for an entry; True when a directory stays to be reused."""
    try:
        st = os.stat(leaf, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode) != is_dir:
        what = ("non-directory", "directory") if is_dir else ("directory", "non-directory")
        raise CopyError(f'cannot overwrite {what[0]} "{shown}" with {what[1]}')
    if not is_dir:
        os.unlink(leaf, dir_fd=parent)
    return is_dir


def _write_file(parent: int, leaf: str, data: BinaryIO | None) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(leaf, flags, 0o600, dir_fd=parent)
    with open(fd, "wb", closefd=True) as out:
        while data is not None and (piece := data.read(CHUNK)):
            out.write(piece)


def _times(m: tarfile.TarInfo) -> tuple[int, int]:
    """(atime, mtime) in ns: the later of the two as atime, as Docker's extraction does."""
    mtime = int(float(m.mtime) * 1e9)
    atime = int(float(m.pax_headers.get("atime", 0)) * 1e9)
    return max(atime, mtime), mtime


def _utime(parent: int, leaf: str, atime: int, mtime: int) -> None:
    os.utime(leaf, ns=(atime, mtime), dir_fd=parent, follow_symlinks=False)


def _metadata(parent: int, leaf: str, m: tarfile.TarInfo) -> None:
    """Mode (with setuid/setgid/sticky), xattrs and times; never the owner."""
    if not m.issym():
        os.chmod(leaf, m.mode & 0o7777, dir_fd=parent)
    for key, value in m.pax_headers.items():
        if key.startswith(_XATTR):
            with contextlib.suppress(OSError):  # best effort, as Docker's (ENOTSUP, EPERM)
                os.setxattr(
                    f"/proc/self/fd/{parent}/{leaf}",
                    key[len(_XATTR) :],
                    value.encode("utf-8", "surrogateescape"),
                    follow_symlinks=False,
                )
    _utime(parent, leaf, *_times(m))
