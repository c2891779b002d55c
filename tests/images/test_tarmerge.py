"""An erofs root disk built straight from the layer tars (tarmerge, ``mkfs.erofs --tar``)
holds exactly what the unpacking build (LayerApplier + mkfs.erofs of a directory) holds,
and refuses the same layers."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from hyperd.images import ImageError, UnsafeLayerEntry, tarmerge
from hyperd.images.errors import RootfsBuildError
from hyperd.images.rootfs import build_image, tar_mkfs_erofs
from hyperd.images.tarmerge import header_bytes

from .imagebuilder import Entry, compress, d, f, hard, sym, tar_bytes
from .treecmp import describe, mounted

MT = 1_600_000_000

needs_mkfs = pytest.mark.skipif(
    os.geteuid() != 0 or tar_mkfs_erofs() is None,
    reason="needs root (loop mounts) and an mkfs.erofs with --tar (make install)",
)


def layer_files(tmp: Path, layers, compression="gzip") -> list[Path]:
    files = []
    for i, entries in enumerate(layers):
        p = tmp / f"layer{i}"
        p.write_bytes(compress(tar_bytes(entries), compression))
        files.append(p)
    return files


def contents(disk: Path, where: Path) -> dict:
    """What a mounted root disk holds: describe() plus the root's mode and every xattr."""
    with mounted(disk, "erofs", where) as mnt:
        got = describe(mnt, dir_mtimes=True)
        st = os.stat(mnt)
        got["."] = (oct(st.st_mode), st.st_uid, st.st_gid)
        for rel in list(got):
            p = mnt / rel
            if rel.startswith("#") or rel == "." or not os.path.lexists(p):
                continue
            names = sorted(os.listxattr(p, follow_symlinks=False))
            if names:
                got["xattr:" + rel] = [(n, os.getxattr(p, n, follow_symlinks=False)) for n in names]
    return got


def both(tmp: Path, layers) -> tuple[dict, dict]:
    """(streamed, unpacked) contents of the root disk of ``layers``."""
    files = layer_files(tmp, layers)
    times = build_image(files, tmp / "streamed.erofs")
    assert "flatten_s" not in times  # built from the tar stream, not unpacked
    build_image(files, tmp / "unpacked.erofs", unpack=True)
    return contents(tmp / "streamed.erofs", tmp / "m1"), contents(
        tmp / "unpacked.erofs", tmp / "m2"
    )


SCENARIOS = {
    "whiteouts and opaque dirs": [
        [
            d("etc", mtime=MT), f("etc/keep", "k", mtime=MT), f("etc/gone", "g", mtime=MT),
            d("etc/sub", mtime=MT), f("etc/sub/x", "x", mtime=MT), d("opq", mtime=MT),
            f("opq/old", "o", mtime=MT), d("opq/deep", mtime=MT), f("opq/deep/old", "o", mtime=MT),
            d("opq2", mtime=MT), f("opq2/old", "o", mtime=MT),
        ],
        [
            d("etc", mtime=MT), f("etc/.wh.gone"), f("etc/.wh.sub"), f("etc/.wh.never-existed"),
            d("opq", mtime=MT), f("opq/.wh..wh..opq"), f("opq/new", "n", mtime=MT),
            d("opq/deep", mtime=MT), f("opq/deep/new", "n", mtime=MT), d("opq2", mtime=MT),
            f("opq2/new", "n", mtime=MT), f("opq2/.wh..wh..opq"), f(".wh..wh.plnk"),
        ],
        [d("etc", mtime=MT), d("etc/sub", 0o700, mtime=MT), f("etc/sub/back", "b", mtime=MT)],
    ],
    "types, owners, modes and xattrs": [
        [
            d(".", 0o751, mtime=MT), d("bin", mtime=MT),
            f("bin/tool", "#!/bin/sh\n", 0o4755, uid=1000, gid=50, mtime=MT),
            hard("bin/tool2", "bin/tool"), sym("bin/sh", "tool", mtime=MT), d("dev", mtime=MT),
            Entry("dev/null", "chardev", major=1, minor=3, mode=0o666, mtime=MT),
            Entry("dev/loop0", "blockdev", major=7, minor=0, mode=0o660, gid=6, mtime=MT),
            Entry("run-fifo", "fifo", mode=0o640, mtime=MT), d("tmp", mode=0o1777, mtime=MT),
            f("x", "attr", xattrs={"user.comment": b"hello", "trusted.t": b"\x00\xff"}, mtime=MT),
            f("empty", mtime=MT), f("big", os.urandom(3 << 20) + b"tail", 0o600, mtime=MT),
        ],
    ],
    "symlinked parents, relative and absolute": [
        [
            d("usr", mtime=MT), d("usr/lib", mtime=MT), d("usr/lib64", mtime=MT),
            sym("lib", "usr/lib", mtime=MT), sym("lib64", "/usr/lib64", mtime=MT),
            sym("usr/l", "../lib", mtime=MT), f("usr/lib/old.so", "o", mtime=MT),
        ],
        [
            d("lib", mtime=MT), f("lib/new.so", "n", mtime=MT), f("lib64/ld.so", "ld", mtime=MT),
            f("usr/l/via-chain", "c", mtime=MT), f("lib/.wh.old.so"), d("lib64/sub", mtime=MT),
            f("lib64/sub/.wh..wh..opq"), f("lib64/sub/s", "s", mtime=MT),
        ],
    ],
    "replacements across and within layers": [
        [
            d("a", mtime=MT), f("a/child", "c", mtime=MT), f("b", "file", mtime=MT),
            sym("c", "a", mtime=MT), f("same", "one", mtime=MT), f("same", "two", mtime=MT),
        ],
        [
            f("a", "now a file", mtime=MT), d("b", 0o700, mtime=MT), f("b/in", "i", mtime=MT),
            d("c", mtime=MT), f("c/real", "r", mtime=MT), d("b", 0o755, mtime=MT + 5),
        ],
    ],
    "hard links across layers keep what they linked": [
        [d("data", mtime=MT), f("data/orig", "first", mtime=MT), sym("data/ln", "orig", mtime=MT)],
        [d("data", mtime=MT), hard("data/copy", "data/orig"), hard("data/ln2", "data/ln")],
        [d("data", mtime=MT), f("data/orig", "replaced", mtime=MT), f("data/.wh.ln")],
    ],
    "long, odd and non-ascii names": [
        [
            d("d" * 120, mtime=MT), f("d" * 120 + "/" + "f" * 200, "long", mtime=MT),
            d("dotted", mtime=MT), d("ünï cødé", mtime=MT),
            f("ünï cødé/ファイル", "utf8", mtime=MT),
            f("with space and 'quote'", "q", mtime=MT), f("./dotted//name", "x", mtime=MT),
            sym("dangling", "/nowhere/at/all", mtime=MT),
        ],
    ],
}  # fmt: skip


@needs_mkfs
@pytest.mark.parametrize("name", SCENARIOS)
def test_streamed_disk_holds_what_the_unpacked_one_holds(tmp_path, name):
    streamed, unpacked = both(tmp_path, SCENARIOS[name])
    assert streamed == unpacked


@needs_mkfs
def test_streamed_disk_applies_the_layers(tmp_path):
    """Not only equal to the unpacking build: the right entries, in the right state."""
    streamed, _ = both(tmp_path, SCENARIOS["whiteouts and opaque dirs"])
    names = {k for k in streamed if not k.startswith(("#", "xattr:")) and k != "."}
    assert names == {
        "etc", "etc/keep", "etc/sub", "etc/sub/back", "opq", "opq/new", "opq/deep",
        "opq/deep/new", "opq2", "opq2/new",
    }  # fmt: skip
    assert streamed["etc/sub"][1] == 0o700


@needs_mkfs
def test_streamed_hard_link_keeps_the_content_it_linked(tmp_path):
    streamed, _ = both(tmp_path, SCENARIOS["hard links across layers keep what they linked"])
    assert streamed["data/copy"][4] == hashlib.sha256(b"first").hexdigest()[:16]
    assert streamed["data/copy"][4] != streamed["data/orig"][4]
    assert streamed["data/ln2"][4] == "orig" and "data/ln" not in streamed
    assert streamed["#hardlinks"] == ()  # each link lost its partner to a later layer


@needs_mkfs
@pytest.mark.parametrize(
    "entries, error, words",
    [
        ([f("../escape", "x")], UnsafeLayerEntry, "contains '..'"),
        ([f("/abs", "x")], UnsafeLayerEntry, "absolute path"),
        ([sym("up", "../../etc")], UnsafeLayerEntry, "points outside the root"),
        ([sym("l", "/"), sym("l2", ".."), f("l2/x", "x")], UnsafeLayerEntry, "outside the root"),
        ([hard("h", "missing")], ImageError, "does not exist"),
        ([d("dir"), hard("h", "dir")], UnsafeLayerEntry, "to a directory"),
        ([sym("a", "b"), sym("b", "a"), f("a/x", "x")], UnsafeLayerEntry, "too many symlinks"),
        ([f("file", "f"), f("file/x", "x")], ImageError, "is not a dir"),
        ([d("d"), f("d/.wh..", "x")], UnsafeLayerEntry, "names no entry"),
    ],
)
def test_streamed_build_refuses_what_unpacking_refuses(tmp_path, entries, error, words):
    files = layer_files(tmp_path, [entries])
    out = tmp_path / "out" / "disk.erofs"
    out.parent.mkdir()
    for unpack in (False, True):
        with pytest.raises(error, match=words):
            build_image(files, out, unpack=unpack)
    assert not list(out.parent.iterdir())  # no image, no temp file, no scratch dir


@needs_mkfs
def test_a_corrupt_layer_midway_leaves_nothing(tmp_path):
    good = layer_files(tmp_path, [[f("a", "a" * 5000)]])
    bad = tmp_path / "bad"
    bad.write_bytes(compress(tar_bytes([f("b", os.urandom(100_000))]), "gzip")[:30_000])
    out = tmp_path / "out" / "disk.erofs"
    out.parent.mkdir()
    with pytest.raises(ImageError, match="^img: layer bad is corrupt: "):
        build_image([*good, bad], out, image="img")
    assert not list(out.parent.iterdir())


@needs_mkfs
def test_a_full_disk_is_an_error_naming_mkfs(tmp_path):
    """mkfs.erofs itself fails (here: no room for the image); the error carries its words."""
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        files = layer_files(tmp_path, [[f("big", os.urandom(4 << 20))]], "none")
        with pytest.raises(RootfsBuildError, match=r"mkfs\.erofs failed \(\d+\): .+"):
            build_image(files, small / "disk.erofs")
        assert not list(small.iterdir())
    finally:
        subprocess.run(["umount", str(small)], check=True)


HEADER_CASES = [
    ("usr/bin/tool", tarfile.REGTYPE, {"size": 12345, "mode": 0o4755, "uid": 1000, "gid": 50}),
    ("etc", tarfile.DIRTYPE, {"mode": 0o1777}),
    ("bin/sh", tarfile.SYMTYPE, {"linkname": "/usr/bin/busybox"}),
    ("dev/null", tarfile.CHRTYPE, {"devmajor": 1, "devminor": 3}),
    ("bin/ln", tarfile.LNKTYPE, {"linkname": "usr/bin/tool"}),
    ("n" * 99, tarfile.REGTYPE, {"size": 8**11 - 1}),  # the largest that fit ustar
    ("n" * 100, tarfile.REGTYPE, {}),  # from here on: PAX
    ("big", tarfile.REGTYPE, {"size": 8**11}),
    ("ünï", tarfile.REGTYPE, {"uid": 8**7, "mtime": 1.5}),
    ("x", tarfile.REGTYPE, {"pax_headers": {"SCHILY.xattr.user.a": "b"}}),
]


@pytest.mark.parametrize("name, kind, fields", HEADER_CASES)
def test_header_bytes_read_back_as_written(name, kind, fields):
    """The packed ustar block (or the PAX fallback) is a valid header with every field."""
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, 0o644, MT
    for key, value in fields.items():
        setattr(info, key, value)
    with tarfile.open(fileobj=io.BytesIO(header_bytes(info) + bytes(1024))) as tar:
        back = tar.next()
    for key in ("name", "type", "mode", "uid", "gid", "size", "mtime", "linkname"):
        assert getattr(back, key) == getattr(info, key), key
    assert (back.devmajor, back.devminor) == (info.devmajor, info.devminor)
    assert {k: v for k, v in back.pax_headers.items() if "xattr" in k} == info.pax_headers


@needs_mkfs
def test_a_directory_too_wide_for_mkfs_tar_is_unpacked_instead(tmp_path, monkeypatch):
    """mkfs.erofs --tar looks each new name up in a list (quadratic in a directory's
    size): past MAX_DIR_NAMES names the build unpacks, with the same result, and says
    each layer once."""
    monkeypatch.setattr(tarmerge, "MAX_DIR_NAMES", 50)
    layers = [
        [d("wide", mtime=MT)] + [f(f"wide/f{i}", str(i), mtime=MT) for i in range(40)],
        [d("wide", mtime=MT)] + [f(f"wide/g{i}", str(i), mtime=MT) for i in range(40)],
    ]
    files = layer_files(tmp_path, layers)
    said = []
    times = build_image(files, tmp_path / "disk.erofs", done=said.append)
    assert "flatten_s" in times and said == files
    got = contents(tmp_path / "disk.erofs", tmp_path / "m")
    assert len([k for k in got if k.startswith("wide/")]) == 80
    monkeypatch.setattr(tarmerge, "MAX_DIR_NAMES", 100)
    assert "flatten_s" not in build_image(files, tmp_path / "streamed.erofs")
    assert contents(tmp_path / "streamed.erofs", tmp_path / "m2") == got
