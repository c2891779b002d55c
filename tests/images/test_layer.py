"""A container's layer of changes: what is filtered out, docker diff, and the stored layer."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import pytest

from hyperd.images.layer import ADDED, CHANGED, DELETED, Changes, UncommittableEntry, store_layer
from hyperd.images.manifest import DOCKER_LAYER_GZIP
from hyperd.images.tree import Tree

from .imagebuilder import Entry, d, f, sym, tar_bytes
from .localimage import changes_tar

MT = 1_700_000_000
LOWER = [
    d("bin"),
    f("bin/sh", "sh", 0o755),
    d("etc"),
    f("etc/passwd", "root:x:0:0"),
    f("etc/group", "root:x:0:"),
    d("tmp", 0o1777),
    d("usr"),
    d("usr/bin"),
    f("usr/bin/tool", "t", 0o755),
    d("proc"),
    d("dev"),
    sym("lib", "usr/lib"),
]


@pytest.fixture
def lower(tmp_path) -> Tree:
    path = tmp_path / "lower.tar"
    path.write_bytes(tar_bytes(LOWER))
    return Tree([path])


def _changes(tmp_path, lower, entries) -> Changes:
    return Changes(changes_tar(tmp_path, entries), lower)


def test_agent_files_and_mount_points_are_left_out(tmp_path, lower):
    ch = _changes(
        tmp_path,
        lower,
        [
            d("etc", mtime=MT + 50),  # copied up only because the agent wrote in it
            f("etc/hosts", "127.0.0.1 localhost"),
            f("etc/hostname", "abc"),
            f("etc/resolv.conf", "nameserver 10.0.0.1"),
            d("sys"),  # made for a mount the image lacked a directory for
            d("proc"),
            f("test"),
        ],
    )
    assert [e.path for e in ch.entries] == ["test"]
    assert ch.diff() == [{"Path": "/test", "Kind": ADDED}]


def test_diff_lists_added_changed_deleted_in_dockers_order(tmp_path, lower):
    ch = _changes(
        tmp_path,
        lower,
        [
            f("newdir/sub/f", "hi"),  # the agent's order is readdir's: any order
            d("newdir"),
            d("newdir/sub"),
            f(".wh.usr"),  # rm -rf /usr: a whole directory of the lower layer
            d("etc", mtime=MT + 60),
            f("etc/.wh.group"),  # a file of the lower layer
            f("etc/passwd", "root:x:0:0\nchanged"),
            d("tmp", 0o1777, mtime=MT + 70),
            f("tmp/t"),
        ],
    )
    assert ch.diff() == [
        {"Path": "/etc", "Kind": CHANGED},
        {"Path": "/etc/group", "Kind": DELETED},
        {"Path": "/etc/passwd", "Kind": CHANGED},
        {"Path": "/newdir", "Kind": ADDED},
        {"Path": "/newdir/sub", "Kind": ADDED},
        {"Path": "/newdir/sub/f", "Kind": ADDED},
        {"Path": "/tmp", "Kind": CHANGED},
        {"Path": "/tmp/t", "Kind": ADDED},
        {"Path": "/usr", "Kind": DELETED},
    ]


def test_parent_of_an_addition_is_listed_even_when_unchanged_itself(tmp_path, lower):
    ch = _changes(tmp_path, lower, [d("usr"), d("usr/bin"), f("usr/bin/new")])
    assert ch.diff() == [
        {"Path": "/usr/bin", "Kind": CHANGED},
        {"Path": "/usr/bin/new", "Kind": ADDED},
    ]


def test_a_directory_the_user_changed_stays_even_empty(tmp_path, lower):
    ch = _changes(tmp_path, lower, [d("usr", 0o700), d("etc"), d("empty")])
    assert [e.path for e in ch.entries] == ["usr", "empty"]
    assert {c["Path"] for c in ch.diff()} == {"/usr", "/empty"}


def test_opaque_directory_keeps_its_marker(tmp_path, lower):
    ch = _changes(tmp_path, lower, [d("usr"), f("usr/.wh..wh..opq"), f("usr/only")])
    assert [e.member.name for e in ch.entries] == ["usr", "usr/.wh..wh..opq", "usr/only"]


def test_device_nodes_cannot_be_committed(tmp_path, lower):
    with pytest.raises(UncommittableEntry, match="cannot commit /dev2/null: it is a device node"):
        _changes(tmp_path, lower, [d("dev2"), Entry("dev2/null", "chardev", major=1, minor=3)])


def test_stored_layer_is_the_filtered_tar_gzipped_with_its_diff_id(tmp_path, lower, service):
    ch = _changes(
        tmp_path,
        lower,
        [
            d("etc"),
            f("etc/hosts", "x"),
            f("etc/passwd", "new"),
            f("big", b"\0" * 100_000, 0o600, uid=7, gid=8),
            Entry("fifo", "fifo"),
            Entry("hl", "hardlink", linkname="big"),
        ],
    )
    desc, diff_id = store_layer(service.store, ch.write_tar, DOCKER_LAYER_GZIP)
    blob = service.store.read(desc.digest)
    assert desc.size == len(blob) and desc.media_type == DOCKER_LAYER_GZIP
    raw = gzip.decompress(blob)
    assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == ["big", "etc", "etc/passwd", "fifo", "hl"]
    assert (members["big"].mode, members["big"].uid, members["big"].gid) == (0o600, 7, 8)
    assert members["hl"].islnk() and members["hl"].linkname == "big"
    assert members["fifo"].isfifo()


def test_tree_resolves_symlinks_inside_the_root(lower):
    assert lower.resolve("/lib/x") == "usr/lib/x"
    assert lower.is_dir("/usr/bin") and not lower.is_dir("/etc/passwd")
    assert lower.resolve("/../../etc") == "etc"


def test_a_socket_is_listed_by_diff_left_out_of_tars_and_refused_by_commit(tmp_path, lower):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tmp = tarfile.TarInfo("tmp")
        tmp.type, tmp.mode = tarfile.DIRTYPE, 0o1777
        tar.addfile(tmp)
        sock = tarfile.TarInfo("tmp/app.sock")
        sock.pax_headers = {"HYPER.socket": "1"}  # how the agent marks a socket
        tar.addfile(sock)
        tar.addfile(tarfile.TarInfo("kept"), io.BytesIO(b""))
    path = tmp_path / "changes.tar"
    path.write_bytes(buf.getvalue())
    ch = Changes(path, lower)
    assert {"Path": "/tmp/app.sock", "Kind": ADDED} in ch.diff()
    out = io.BytesIO()
    ch.write_tar(out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert "tmp/app.sock" not in tar.getnames() and "kept" in tar.getnames()
    with pytest.raises(UncommittableEntry, match="cannot commit /tmp/app.sock: it is a socket"):
        ch.check_committable()
