"""Flatten image layers into a directory and pack it as a read-only filesystem image.

Layer application follows the OCI image spec (hyperd/images/layerrules.py). Where
mkfs.erofs reads tar streams, an erofs root disk is built without unpacking
(hyperd/images/tarmerge.py); this module's LayerApplier serves ext4, export, and an
mkfs.erofs without ``--tar``.

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
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from hyperd.images.errors import ImageError, RootfsBuildError
from hyperd.images.layerrules import (
    DIRECTORY,
    MISSING,
    OTHER,
    SYMLINK,
    LayerWalker,
    check_diff_id,
    corrupt,
    layer_name,
    resolve_dir,
    split_name,
)
from hyperd.images.layerstream import CORRUPT, TAR_BUFSIZE, open_layer, read_tar
from hyperd.images.limits import Budget, ImageLimits
from hyperd.images.tarmerge import WideDirectory, pack_erofs

log = logging.getLogger(__name__)

FSTYPES = ("erofs", "ext4")
TOOL_DIR = "/usr/local/lib/hyper/bin"  # `make install` puts an mkfs.erofs with --tar here
_TAR_CAPABLE: dict[tuple[str, int], bool] = {}


class LayerApplier(LayerWalker):
    """Applies layer blobs, in order, onto a root directory."""

    def __init__(
        self, root: str | os.PathLike, budget: Budget | None = None, strict_xattrs: bool = False
    ):
        super().__init__(budget or Budget(None))
        self.root = Path(os.path.realpath(root))
        self.strict_xattrs = strict_xattrs  # an xattr the filesystem refuses is an error
        if not self.root.is_dir():
            raise ImageError(f"rootfs directory {self.root} does not exist")
        self._dir_times: dict[tuple[str, ...], float] = {}
        self._root = str(self.root)
        self._dirs: dict[tuple[str, ...], tuple[str, ...]] = {}  # parts -> resolved dir

    def _path(self, rel: Iterable[str]) -> str:
        return "/".join((self._root, *rel))

    # -- the tree: the directory -------------------------------------------------------------

    def resolve(self, parts: list[str], entry: str, create: bool) -> tuple[str, ...] | None:
        """Resolve ``parts`` to a real directory inside the root (layerrules.resolve_dir).

        Missing directories are created (0755, root) when ``create``; else None is returned.
        Answers are remembered until a directory or symlink is removed (``_remove``).
        """
        key = tuple(parts)
        known = self._dirs.get(key)
        if known is not None:
            return known

        def probe(cur: tuple[str, ...], comp: str) -> tuple[str, str]:
            kind = self.kind_of((*cur, comp))
            if kind == MISSING and create:
                os.mkdir(self._path((*cur, comp)), 0o755)
                return DIRECTORY, ""
            return kind, os.readlink(self._path((*cur, comp))) if kind == SYMLINK else ""

        found = resolve_dir(parts, entry, probe)
        if found is not None:
            self._dirs[key] = found
        return found

    def kind_of(self, rel: tuple[str, ...]) -> str:
        try:
            mode = os.lstat(self._path(rel)).st_mode
        except FileNotFoundError:
            return MISSING
        if stat.S_ISDIR(mode):
            return DIRECTORY
        return SYMLINK if stat.S_ISLNK(mode) else OTHER

    def children(self, rel: tuple[str, ...]) -> list[tuple[str, bool]]:
        with os.scandir(self._path(rel)) as it:
            return [(e.name, e.is_dir(follow_symlinks=False)) for e in it]

    # -- applying ------------------------------------------------------------------------

    def root_meta(self, m: tarfile.TarInfo) -> None:
        self._set_meta((), m)

    def make_dir(self, rel: tuple[str, ...], m: tarfile.TarInfo) -> None:
        self._make_dir(self._path(rel))
        self._set_meta(rel, m)

    def create(self, tar, m, rel: tuple[str, ...], link: tuple[str, ...] | None) -> None:
        path = self._path(rel)
        self._remove(path)
        self._create(tar, m, path, link)
        self._set_meta(rel, m)

    def remove(self, rel: tuple[str, ...]) -> None:
        self._remove(self._path(rel))

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

    def _create(self, tar, m: tarfile.TarInfo, path: str, link: tuple[str, ...] | None) -> None:
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
            os.symlink(m.linkname, path)
        elif m.islnk():
            os.link(self._path(link), path, follow_symlinks=False)
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
    applier.apply_files(paths, _pair_diff_ids(paths, diff_ids), done)
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
        budget.start_layer(layer_name(path), path.stat().st_size)
        with open_layer(path, hashed=True) as stream:
            try:
                with read_tar(stream) as tar:
                    for m in tar:
                        budget.spend(m, len(split_name(m.name)))
                        if m.islnk():
                            split_name(m.linkname, "hard link target")
            except (tarfile.TarError, OSError, *CORRUPT) as e:
                raise corrupt(budget, e) from None
            stream.drain()
        check_diff_id(budget, stream.digest(), diff_id)


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


def _once(done: Callable[[Path], None] | None) -> Callable[[Path], None] | None:
    """``done`` that says each layer once, however many times a build reads it."""
    if done is None:
        return None
    said: set[Path] = set()

    def once(layer: Path) -> None:
        if layer not in said:
            said.add(layer)
            done(layer)

    return once


def tar_mkfs_erofs() -> str | None:
    """An mkfs.erofs that builds from a tar stream (erofs-utils >= 1.7), looked for in
    TOOL_DIR then on PATH; None when there is none."""
    search = os.pathsep.join((TOOL_DIR, os.environ.get("PATH", os.defpath)))
    path = shutil.which("mkfs.erofs", path=search)
    if path is None:
        return None
    key = (path, os.stat(path).st_mtime_ns)
    if key not in _TAR_CAPABLE:
        res = subprocess.run([path, "--help"], capture_output=True, text=True, check=False)
        _TAR_CAPABLE[key] = "--tar" in res.stdout
    return path if _TAR_CAPABLE[key] else None


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
    unpack: bool = False,
    publish: Callable[[Path, Path], None] | None = None,
) -> dict:
    """Pack the layers into the filesystem image ``out``; errors name ``image``;
    ``done(layer)`` as each layer is read.

    erofs is built straight from the layers' tar streams where mkfs.erofs can (scratch
    space under ``workdir``) and no directory is too wide for it (tarmerge.WideDirectory);
    otherwise, or with ``unpack``, the layers are flattened into a temp dir under
    ``workdir`` and packed from there. ``out`` appears atomically: a temp
    file next to it is renamed onto it, after an fsync, or by ``publish(tmp, out)``, which
    syncs later (hyperd/images/writebehind.py). Returns timings: ``build_s``, and for an unpacked
    build ``flatten_s`` and ``mkfs_s``.
    """
    if fstype not in MAKERS:
        raise RootfsBuildError(f"unsupported root filesystem type {fstype!r} (use {FSTYPES})")
    mkfs = None if unpack or fstype != "erofs" else tar_mkfs_erofs()
    tmpdir = Path(tempfile.mkdtemp(dir=workdir or out.parent, prefix=".build-"))
    img = out.with_name(f".{out.name}.{os.getpid()}.{id(tmpdir)}.tmp")
    try:
        t0 = time.monotonic()
        if mkfs is not None:
            done = _once(done)
            try:
                ids = _pair_diff_ids(layer_paths, diff_ids)
                pack_erofs(mkfs, layer_paths, img, ids, Budget(limits, image), tmpdir, done)
                times = {}
            except WideDirectory as exc:
                log.info("%s: %s for mkfs.erofs --tar; unpacking it", image, exc)
                img.unlink(missing_ok=True)
                mkfs = None
        if mkfs is None:
            tree = tmpdir / "tree"
            tree.mkdir(mode=0o755)
            os.chmod(tree, 0o755)
            flatten(layer_paths, tree, diff_ids, limits, strict_xattrs, image, done)
            t1 = time.monotonic()
            MAKERS[fstype](tree, img)
            times = {"flatten_s": t1 - t0, "mkfs_s": time.monotonic() - t1}
        os.chmod(img, 0o444)
        if publish is not None:
            publish(img, out)
        else:
            with open(img, "rb") as f:
                os.fsync(f.fileno())
            os.replace(img, out)
        return {**times, "build_s": time.monotonic() - t0, "bytes": out.stat().st_size}
    finally:
        img.unlink(missing_ok=True)
        shutil.rmtree(tmpdir, ignore_errors=True)
