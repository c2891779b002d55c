"""``hyper cp``'s local half without a daemon: Docker's rules for where a copy lands, the
tar stream built from a local tree, and its extraction (which refuses whatever would land
outside the destination)."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from hyperctl.archive import paths
from hyperctl.archive.pack import Packer
from hyperctl.archive.paths import CopyError, CopyInfo
from hyperctl.archive.unpack import Extractor
from hyperctl.commands.cp import split_cp_arg


def test_split_cp_arg_as_docker():
    assert split_cp_arg("web:/etc/hosts") == ("web", "/etc/hosts")
    assert split_cp_arg("/abs/x:y") == ("", "/abs/x:y")
    assert split_cp_arg("./file:name") == ("", "./file:name")
    assert split_cp_arg("relative") == ("", "relative")
    assert split_cp_arg("-") == ("", "-")


def test_path_helpers_keep_a_trailing_slash_or_dot():
    assert paths.split_dir_entry("/a/b/") == ("/a", "b")
    assert paths.split_dir_entry("/a/b/.") == ("/a/b", ".")
    assert paths.split_dir_entry("/") == ("/", "/")
    assert paths.preserve_trailing("/x/a", "a/.") == "/x/a/."
    assert paths.preserve_trailing("/x/a", "a/") == "/x/a/"
    assert paths.rebase_name("/d/link", "/d/target") == ("/d/target", "link")
    assert paths.rebase_name("/d/link/", "/d/link") == ("/d/link/", "")
    assert paths.source_base("/") == "." and paths.source_base("/x/y/") == "y"


@pytest.mark.parametrize(
    "src,dst,expected",
    [
        (CopyInfo("/s/dir", True, True), CopyInfo("/d/x", True, True), ("/d/x", None)),
        (CopyInfo("/s/dir", True, True), CopyInfo("/d/new"), ("/d", "new")),
        (CopyInfo("/s/dir/.", True, True), CopyInfo("/d/new"), ("/d", "new")),
        (CopyInfo("/s/dir/.", True, True), CopyInfo("/d/x", True, True), ("/d/x", None)),
        (CopyInfo("/s/f", True, False), CopyInfo("/d/g", True, False), ("/d", "g")),
        (CopyInfo("/s/f", True, False), CopyInfo("/d/g"), ("/d", "g")),
        (CopyInfo("/s/f", True, False), CopyInfo("/d/f"), ("/d", None)),
        (CopyInfo("/s/t", True, False, "link"), CopyInfo("/d", True, True), ("/d", "link")),
    ],
)
def test_prepare_places_the_copy_as_docker(src, dst, expected):
    assert paths.prepare(src, dst) == expected


def test_prepare_refuses_as_docker():
    with pytest.raises(CopyError, match="^cannot copy directory$"):
        paths.prepare(CopyInfo("/s/dir", True, True), CopyInfo("/d/file", True, False))
    with pytest.raises(CopyError, match="^no such directory$"):
        paths.prepare(CopyInfo("/s/f", True, False), CopyInfo("/d/new/"))


def test_destination_info_follows_symlinks_and_needs_a_parent(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "to-dir").symlink_to("dir")
    info = paths.destination_info(str(tmp_path / "to-dir"))
    assert (info.path, info.exists, info.is_dir) == (str(tmp_path / "dir"), True, True)
    assert not paths.destination_info(str(tmp_path / "new")).exists
    with pytest.raises(CopyError, match="no such file or directory"):
        paths.destination_info(str(tmp_path / "nodir" / "x"))


def _tree(root):
    """A small tree with every kind of entry cp carries."""
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "run.sh").write_bytes(b"#!/bin/sh\n")
    (root / "run.sh").chmod(0o4751)
    os.link(root / "run.sh", root / "hard")
    (root / "link").symlink_to("run.sh")
    os.mkfifo(root / "fifo")
    (root / "sub" / "deep" / "big").write_bytes(os.urandom(300_000))
    os.utime(root / "sub", (1_600_000_000, 1_600_000_000))


def _listing(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else ""
            size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            out[os.path.relpath(p, root)] = (stat.filemode(st.st_mode), size, link)
    return out


def test_pack_then_extract_keeps_types_modes_links_and_times(tmp_path):
    _tree(tmp_path / "src")
    packer = Packer(str(tmp_path / "src"), "copy")
    data = b"".join(packer.chunks())
    assert packer.sent == len(data) and len(data) % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
    assert names[0] == "copy" and "copy/sub/deep/big" in names
    (tmp_path / "out").mkdir()
    Extractor(str(tmp_path / "out")).extract(io.BytesIO(data))
    assert _listing(tmp_path / "out" / "copy") == _listing(tmp_path / "src")
    out = tmp_path / "out" / "copy"
    assert os.stat(out / "hard").st_ino == os.stat(out / "run.sh").st_ino
    assert int(os.stat(out / "sub").st_mtime) == 1_600_000_000


def test_extract_renames_the_top_entry(tmp_path):
    _tree(tmp_path / "src")
    data = b"".join(Packer(str(tmp_path / "src"), ".").chunks())
    (tmp_path / "out").mkdir()
    Extractor(str(tmp_path / "out"), lambda n: paths.rebase(n, ".", "renamed")).extract(
        io.BytesIO(data)
    )
    assert _listing(tmp_path / "out" / "renamed") == _listing(tmp_path / "src")


def _tar(*entries) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, link in entries:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            data = b"x" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@pytest.mark.parametrize(
    "entries",
    [
        [("../evil", tarfile.REGTYPE, "")],
        [("a/../../evil", tarfile.REGTYPE, "")],
        [("hard", tarfile.LNKTYPE, "../outside")],
        [("sub/link", tarfile.SYMTYPE, "../../outside")],
        [("escape", tarfile.SYMTYPE, "/"), ("escape/evil", tarfile.REGTYPE, "")],
    ],
)
def test_extract_refuses_entries_that_leave_the_destination(tmp_path, entries):
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(CopyError, match="refusing entry"):
        Extractor(str(dest)).extract(_tar(*entries))
    assert sorted(os.listdir(tmp_path)) == ["dest"]
    assert not os.path.exists("/evil")


def test_extract_keeps_links_that_stay_inside(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    entries = [("f", tarfile.REGTYPE, ""), ("sub/up", tarfile.SYMTYPE, "../f")]
    Extractor(str(dest)).extract(_tar(*entries, ("abs", tarfile.SYMTYPE, "/etc/passwd")))
    assert os.readlink(dest / "sub" / "up") == "../f" and (dest / "sub" / "up").read_bytes() == b"x"
    assert os.readlink(dest / "abs") == "/etc/passwd"


def test_extract_never_swaps_a_directory_and_a_file(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(CopyError, match="cannot overwrite directory"):
        Extractor(str(tmp_path)).extract(_tar(("d", tarfile.REGTYPE, "")))
    (tmp_path / "f").write_text("old")
    with pytest.raises(CopyError, match="cannot overwrite non-directory"):
        Extractor(str(tmp_path)).extract(_tar(("f", tarfile.DIRTYPE, "")))
    Extractor(str(tmp_path)).extract(_tar(("f", tarfile.REGTYPE, "")))
    assert (tmp_path / "f").read_bytes() == b"x"
