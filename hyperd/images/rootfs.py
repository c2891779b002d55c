"""Flatten image layers into a directory and pack it as a read-only filesystem image.

Layer application follows the OCI image spec: ``.wh.<name>`` deletes ``<name>`` from lower
layers, ``.wh..wh..opq`` hides everything a lower layer put in its directory.

Safety: entries are created only through parent directories that were resolved component
by component with lstat inside the root. A parent symlink is followed inside the root (an
absolute target restarts at the root, as in a chroot); one that climbs above the root, an
absolute or ``..`` entry name, a symlink whose relative target leaves the root, or a hard
link to outside is refused with UnsafeLayerEntry. Nothing is ever created through a symlink.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import posixpath
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from hyperd.images.errors import DigestMismatch, ImageError, RootfsBuildError, UnsafeLayerEntry
from hyperd.images.layerstream import CORRUPT, TAR_BUFSIZE, open_layer, read_tar
from hyperd.images.limits import Budget, ImageLimits

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
MAX_SYMLINK_HOPS = 40
FSTYPES = ("erofs", "ext4")


def _split_name(name: str, what: str = "entry") -> list[str]:
    if name.startswith("/"):
        raise UnsafeLayerEntry(f"layer {what} {name!r} has an absolute path", entry=name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayerEntry(f"layer {what} {name!r} contains '..'", entry=name)
    return parts


class LayerApplier:
    """Applies layer tar streams, in order, onto a root directory."""

    def __init__(
        self, root: str | os.PathLike, budget: Budget | None = None, strict_xattrs: bool = False
    ):
        self.root = Path(os.path.realpath(root))
        self.budget = budget or Budget(None)
        self.strict_xattrs = strict_xattrs  # an xattr the filesystem refuses is an error
        if not self.root.is_dir():
            raise ImageError(f"rootfs directory {self.root} does not exist")
        self._dir_times: dict[tuple[str, ...], float] = {}
        self._root = str(self.root)
        self._layer: set[tuple[str, ...]] = set()
        self._dirs: dict[tuple[str, ...], tuple[str, ...]] = {}  # parts -> resolved dir
        self.skipped: list[str] = []

    # -- path resolution -------------------------------------------------------------------

    def _path(self, rel: Iterable[str]) -> str:
        return "/".join((self._root, *rel))

    def _resolve_dir(self, parts: list[str], entry: str, create: bool) -> tuple[str, ...] | None:
        """Resolve ``parts`` to a real directory inside the root, as a tuple of components.

        Missing directories are created (0755, root) when ``create``; else None is returned.
        Answers are remembered until a directory or symlink is removed (``_remove``).
        """
        key = tuple(parts)
        known = self._dirs.get(key)
        if known is not None:
            return known
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
            p = self._path([*cur, comp])
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                if not create:
                    return None
                os.mkdir(p, 0o755)
                cur.append(comp)
                continue
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise UnsafeLayerEntry(f"too many symlinks resolving {entry!r}", entry=entry)
                target = os.readlink(p)
                if target.startswith("/"):
                    cur = []
                todo = target.split("/") + todo
            elif stat.S_ISDIR(st.st_mode):
                cur.append(comp)
            else:
                raise ImageError(f"layer entry {entry!r}: {'/'.join(cur + [comp])} is not a dir")
        self._dirs[key] = tuple(cur)
        return self._dirs[key]

    # -- applying ------------------------------------------------------------------------

    def apply(self, stream: BinaryIO) -> None:
        """Apply one uncompressed layer tar stream."""
        self._layer = set()
        try:
            with read_tar(stream) as tar:
                for member in tar:
                    self._entry(tar, member)
        except tarfile.TarError as e:
            raise _corrupt(self.budget, e) from None

    def apply_file(self, path: str | os.PathLike, diff_id: str | None = None) -> None:
        """Apply one layer blob file (compressed or not), checking its ``diff_id`` if given."""
        self.budget.start_layer(_layer_name(path), os.path.getsize(path))
        try:
            with open_layer(path, hashed=True) as stream:
                self.apply(stream)
                stream.drain()
        except CORRUPT as e:
            raise _corrupt(self.budget, e) from None
        _check_diff_id(self.budget, stream.digest(), diff_id)

    def _mark(self, rel: tuple[str, ...]) -> None:
        for i in range(1, len(rel) + 1):
            self._layer.add(rel[:i])

    def _entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = _split_name(m.name)
        self.budget.spend(m, len(parts))
        if not parts:
            if m.isdir():
                self._set_meta((), m)
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts, m.name)
            return
        parent = self._resolve_dir(parts[:-1], m.name, create=True)
        rel = (*parent, base)
        path = self._path(rel)
        if m.isdir():
            self._make_dir(path)
        else:
            self._remove(path)
            self._create(tar, m, parts, rel, path)
        self._mark(rel)
        self._set_meta(rel, m)

    def _whiteout(self, parts: list[str], name: str) -> None:
        parent = self._resolve_dir(parts[:-1], name, create=parts[-1] == OPAQUE_MARKER)
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
            if rel not in self._layer:
                self._remove(self._path(rel))

    def _clear_lower(self, rel: tuple[str, ...]) -> None:
        """Remove what lower layers put under ``rel``, keeping this layer's entries."""
        for name in os.listdir(self._path(rel)):
            child = (*rel, name)
            path = self._path(child)
            if child not in self._layer:
                self._remove(path)
            elif stat.S_ISDIR(os.lstat(path).st_mode):
                self._clear_lower(child)

    def _remove(self, path: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self._dirs.clear()
            shutil.rmtree(path)
        else:
            if stat.S_ISLNK(st.st_mode):
                self._dirs.clear()
            os.unlink(path)

    def _make_dir(self, path: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, 0o755)
            return
        if not stat.S_ISDIR(st.st_mode):
            self._remove(path)
            os.mkdir(path, 0o755)

    def _create(self, tar, m: tarfile.TarInfo, parts, rel, path: str) -> None:
        if m.isreg():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                with os.fdopen(fd, "wb") as out, tar.extractfile(m) as src:
                    shutil.copyfileobj(src, out, TAR_BUFSIZE)
            except OSError as exc:
                if exc.errno is not None and exc.filename is None:
                    exc.filename = str(path)  # a full disk: say which file
                raise
        elif m.issym():
            target = m.linkname
            if not target.startswith("/"):
                lexical = posixpath.normpath(posixpath.join("/".join(parts[:-1]), target))
                if lexical == ".." or lexical.startswith("../"):
                    raise UnsafeLayerEntry(
                        f"symlink {m.name!r} -> {target!r} points outside the root", entry=m.name
                    )
            os.symlink(target, path)
        elif m.islnk():
            self._hardlink(m, path)
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            try:
                os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
            except PermissionError:
                self.skipped.append(m.name)  # rootless: device nodes are not allowed
        elif m.isfifo():
            os.mkfifo(path, 0o600)
        else:
            self.skipped.append(m.name)
            log.warning("skipping layer entry %s of unsupported type %r", m.name, m.type)

    def _hardlink(self, m: tarfile.TarInfo, path: str) -> None:
        tparts = _split_name(m.linkname, "hard link target")
        if not tparts:
            raise UnsafeLayerEntry(f"hard link {m.name!r} points at the root", entry=m.name)
        parent = self._resolve_dir(tparts[:-1], m.name, create=False)
        target = None if parent is None else self._path((*parent, tparts[-1]))
        if target is None or not os.path.lexists(target):
            raise ImageError(f"hard link {m.name!r}: target {m.linkname!r} does not exist")
        if stat.S_ISDIR(os.lstat(target).st_mode):
            raise UnsafeLayerEntry(f"hard link {m.name!r} to a directory", entry=m.name)
        os.link(target, path, follow_symlinks=False)

    def _set_meta(self, rel: tuple[str, ...], m: tarfile.TarInfo) -> None:
        path = self._path(rel)
        if m.islnk() or (m.isdev() and m.name in self.skipped) or not os.path.lexists(path):
            return
        with contextlib.suppress(PermissionError):
            os.chown(path, m.uid, m.gid, follow_symlinks=False)
        if not m.issym():
            os.chmod(path, m.mode & 0o7777)
        for key, value in m.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                raw = value.encode("utf-8", "surrogateescape")
                try:
                    os.setxattr(path, key[13:], raw, follow_symlinks=False)
                except OSError as e:
                    if self.strict_xattrs and e.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
                        raise
                    log.debug("xattr %s on %s not kept: %s", key[13:], m.name, e)
        if m.isdir():
            self._dir_times[rel] = m.mtime
        else:
            os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)

    def finish(self) -> None:
        """Set directory mtimes (last, since creating entries changes them)."""
        for rel in sorted(self._dir_times, key=len, reverse=True):
            path = self._path(rel)
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISDIR(os.lstat(path).st_mode):
                    t = self._dir_times[rel]
                    os.utime(path, (t, t), follow_symlinks=False)


def _pair_diff_ids(paths: list, diff_ids: Iterable[str] | None) -> list:
    ids = list(diff_ids) if diff_ids is not None else [None] * len(paths)
    if len(ids) != len(paths):
        raise ImageError(f"{len(paths)} layers but {len(ids)} diff_ids")
    return ids


def flatten(
    layer_paths: Iterable[str | os.PathLike],
    dest: str | os.PathLike,
    diff_ids: Iterable[str] | None = None,
    limits: ImageLimits | None = None,
    strict_xattrs: bool = False,
    image: str = "image",
    done: Callable[[Path], None] | None = None,
) -> LayerApplier:
    """Apply layer blobs (bottom first) onto the existing directory ``dest``.

    With ``diff_ids`` (from the image config) each layer's uncompressed digest is checked;
    the image's expansion is held to ``limits`` as it goes; errors name ``image`` and the
    layer. ``strict_xattrs``: an extended attribute ``dest``'s filesystem does not take
    raises (else it is skipped, logged). ``done(path)`` is called as each layer is applied.
    """
    applier = LayerApplier(dest, Budget(limits, image), strict_xattrs)
    paths = list(layer_paths)
    for p, diff_id in zip(paths, _pair_diff_ids(paths, diff_ids), strict=True):
        applier.apply_file(p, diff_id)
        if done is not None:
            done(Path(p))
    applier.finish()
    return applier


def scan_layers(
    layer_paths: list[Path],
    diff_ids: Iterable[str] | None,
    limits: ImageLimits | None,
    image: str,
) -> None:
    """Check layer blobs without unpacking them, as a pull or load does before it lists an
    image: readable tars, safe entry names, the uncompressed digests of the config, and the
    image's expansion within ``limits``."""
    budget = Budget(limits, image)
    for path, diff_id in zip(layer_paths, _pair_diff_ids(layer_paths, diff_ids), strict=True):
        budget.start_layer(_layer_name(path), path.stat().st_size)
        with open_layer(path, hashed=True) as stream:
            try:
                with read_tar(stream) as tar:
                    for m in tar:
                        budget.spend(m, len(_split_name(m.name)))
                        if m.islnk():
                            _split_name(m.linkname, "hard link target")
            except (tarfile.TarError, OSError, *CORRUPT) as e:
                raise _corrupt(budget, e) from None
            stream.drain()
        _check_diff_id(budget, stream.digest(), diff_id)


def _layer_name(path: str | os.PathLike) -> str:
    return f"layer {os.path.basename(path)[:12]}"


def _corrupt(budget: Budget, error: Exception) -> ImageError:
    return ImageError(f"{budget.where()} is corrupt: {error}")


def _check_diff_id(budget: Budget, digest: str, diff_id: str | None) -> None:
    if diff_id and diff_id != digest:
        raise DigestMismatch(
            f"{budget.where()} has uncompressed digest {digest}, the image config says {diff_id}"
        )


# -- filesystem images -----------------------------------------------------------------------


def _tree_usage(root: Path) -> tuple[int, int]:
    """(bytes rounded to 4 KiB blocks, inode count) of a tree, counting hard links once."""
    blocks, inodes, seen = 0, 1, set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            inodes += 1
            blocks += (st.st_size + 4095) // 4096 + 1
    return blocks * 4096, inodes


def make_ext4(src: Path, out: Path) -> None:
    """Pack ``src`` into an ext4 image at ``out`` (no journal, sized from the tree)."""
    used, inodes = _tree_usage(src)
    inodes = inodes + inodes // 4 + 64
    size = int(used * 1.15) + inodes * 256 + (16 << 20)
    size = (size + (1 << 20) - 1) & ~((1 << 20) - 1)
    with open(out, "wb") as f:
        f.truncate(size)
    cmd = [
        "mkfs.ext4", "-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-I", "256",
        "-N", str(inodes), "-O", "^has_journal,^resize_inode",
        "-E", "root_owner=0:0,lazy_itable_init=0", "-d", str(src), str(out),
    ]  # fmt: skip
    _run(cmd)
    if not (src / "lost+found").exists():  # mke2fs adds one; a container root has none
        _run(["debugfs", "-w", "-R", "rmdir /lost+found", str(out)])


def make_erofs(src: Path, out: Path) -> None:
    """Pack ``src`` into an uncompressed erofs image at ``out`` keeping per-file mtimes."""
    _run(["mkfs.erofs", "--quiet", "--preserve-mtime", str(out), str(src)])


def _run(cmd: list[str]) -> None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise RootfsBuildError(f"{cmd[0]} is not installed") from None
    if res.returncode != 0:
        raise RootfsBuildError(f"{cmd[0]} failed ({res.returncode}): {res.stderr.strip()[-500:]}")


MAKERS = {"ext4": make_ext4, "erofs": make_erofs}


def build_image(
    layer_paths: list[Path],
    out: Path,
    fstype: str = "erofs",
    workdir: Path | None = None,
    diff_ids: list[str] | None = None,
    limits: ImageLimits | None = None,
    strict_xattrs: bool = False,
    image: str = "image",
    done: Callable[[Path], None] | None = None,
) -> dict:
    """Flatten layers (in a temp dir under ``workdir``) and pack them into ``out``; errors
    name ``image``; ``done(layer)`` as each layer is flattened.

    ``out`` appears atomically (temp file next to it, fsync, rename). Returns timings.
    """
    if fstype not in MAKERS:
        raise RootfsBuildError(f"unsupported root filesystem type {fstype!r} (use {FSTYPES})")
    tmpdir = Path(tempfile.mkdtemp(dir=workdir or out.parent, prefix=".build-"))
    img = out.with_name(f".{out.name}.{os.getpid()}.{id(tmpdir)}.tmp")
    try:
        tree = tmpdir / "tree"
        tree.mkdir(mode=0o755)
        os.chmod(tree, 0o755)
        t0 = time.monotonic()
        flatten(layer_paths, tree, diff_ids, limits, strict_xattrs, image, done)
        t1 = time.monotonic()
        MAKERS[fstype](tree, img)
        t2 = time.monotonic()
        with open(img, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(img, 0o444)
        os.replace(img, out)
        return {"flatten_s": t1 - t0, "mkfs_s": t2 - t1, "bytes": out.stat().st_size}
    finally:
        img.unlink(missing_ok=True)
        shutil.rmtree(tmpdir, ignore_errors=True)
