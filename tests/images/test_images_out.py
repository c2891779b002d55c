"""Images made here: commit (image side), history, rmi of unnamed parents, import, squash."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile

import pytest

from hyperd.errors import InvalidArgument
from hyperd.images.build.squash import squash
from hyperd.images.commit import NewImage, commit_changes
from hyperd.images.importer import check_url, import_tarball
from hyperd.images.manifest import load_json, parse_manifest
from hyperd.images.rootfs import flatten

from .imagebuilder import d, f, tar_bytes
from .localimage import changes_tar, local_image
from .treecmp import describe

BASE = [d("etc"), f("etc/passwd", "root:x:0:0"), f("etc/group", "root:x:0:"), d("usr"),
        d("usr/lib"), f("usr/lib/libx.so", "lib")]  # fmt: skip


def _tree(svc, rec, tmp_path, name="tree"):
    out = tmp_path / name
    out.mkdir()
    config = load_json(svc.store.read(rec.config_digest), "config")
    flatten([svc.store.path(x.digest) for x in rec.layers], out, config["rootfs"]["diff_ids"])
    return {k: v for k, v in describe(out, mtimes=False).items() if k != "#hardlinks"}


def test_commit_makes_a_child_image_with_exactly_the_changed_tree(service, tmp_path):
    base = local_image(service, [BASE], {"Cmd": ["sh"], "Env": ["A=1"]}, "base:1")
    changes = changes_tar(
        tmp_path,
        [
            d("etc"),
            f("etc/hosts", "agent's"),
            f("etc/passwd", "root:x:0:0\nme:x:1:1"),
            f("etc/.wh.group"),
            f(".wh.usr"),
            d("new"),
            f("new/file", "hello", 0o640),
        ],
    )
    new = NewImage({"Cmd": ["cat", "/new/file"], "Env": ["A=1"]}, created_by="touch", comment="m")
    rec = commit_changes(service, base, changes, new, ["mine:v1"])
    assert [x.digest for x in rec.layers[:-1]] == [x.digest for x in base.layers]
    assert len(rec.layers) == 2 and rec.tags == ["docker.io/library/mine:v1"]
    tree = _tree(service, rec, tmp_path)
    assert sorted(tree) == ["etc", "etc/passwd", "new", "new/file"]
    info = service.inspect("mine:v1")
    assert info["Parent"] == base.id and info["Comment"] == "m"
    assert info["Config"]["Cmd"] == ["cat", "/new/file"]
    parse_manifest(service.store.read(rec.manifest_digest))


def test_history_newest_first_with_local_ids(service, tmp_path):
    base = local_image(service, [BASE], name="base:1", created_by="ADD rootfs")
    mid = local_image(service, [[f("a", "12345")]], parent=base, created_by="RUN a")
    top = local_image(service, [[f("b", "xy")]], parent=mid, name="top:1", created_by="RUN b")
    hist = service.history("top:1")
    assert [h["CreatedBy"] for h in hist] == ["RUN b", "RUN a", "ADD rootfs"]
    assert [h["Id"] for h in hist] == [top.id, mid.id, base.id]
    assert [h["Size"] for h in hist] == [2, 5, len("root:x:0:0") + len("root:x:0:") + 3]
    assert hist[0]["Tags"] == ["top:1"] and hist[1]["Tags"] is None


def test_rmi_removes_unnamed_parents_but_not_named_ones(service):
    base = local_image(service, [BASE], name="base:1")
    mid = local_image(service, [[f("a")]], parent=base)
    top = local_image(service, [[f("b")]], parent=mid, name="top:1")
    out = service.remove("top:1")
    assert {"Deleted": top.id} in out and {"Deleted": mid.id} in out
    assert service.index.get(base.id) is not None and service.index.get(mid.id) is None


def _tar(entries) -> bytes:
    return tar_bytes(entries)


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress, bz2.compress, lzma.compress])
def test_import_any_compression_with_changes(service, tmp_path, compress):
    src = tmp_path / "rootfs"
    src.write_bytes(compress(_tar([d("bin"), f("bin/x", "x", 0o755)])))
    rec = import_tarball(
        service, src, names=["imp:1"], message="", changes=['CMD ["echo"]', "USER foobar"]
    )
    info = service.inspect("imp:1")
    assert info["Config"]["Cmd"] == ["echo"] and info["Config"]["User"] == "foobar"
    assert info["Comment"] == "Imported from -" and len(rec.layers) == 1
    assert sorted(_tree(service, rec, tmp_path)) == ["bin", "bin/x"]


def test_import_refuses_non_tar_and_remote_urls(service, tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"no tar here" * 100)
    with pytest.raises(InvalidArgument, match="not a \\(compressed\\) tar"):
        import_tarball(service, junk)
    with pytest.raises(InvalidArgument, match="only http\\(s\\) URLs on a loopback host"):
        check_url("https://example.com/rootfs.tar")
    check_url("http://127.0.0.1:8000/rootfs.tar")


def test_squash_merges_the_build_layers_keeping_deletions(service, tmp_path):
    base = local_image(service, [BASE], name="base:1")
    top = local_image(
        service,
        [
            [f("file_1", "1"), d("tmpdir"), f("tmpdir/x")],
            [f("file_2", "2"), f(".wh.tmpdir"), d("etc"), f("etc/.wh.group")],
            [f("file_3", "3"), f(".wh.file_1"), f(".wh.usr"), d("usr"), f("usr/new")],
        ],
        parent=base,
        name="top:1",
    )
    squashed = squash(service, base, top)
    assert len(squashed.layers) == len(base.layers) + 1
    assert _tree(service, top, tmp_path, "a") == _tree(service, squashed, tmp_path, "b")
    cfg = load_json(service.store.read(squashed.config_digest), "config")
    assert sum(1 for h in cfg["history"] if not h.get("empty_layer")) == 2
    raw = gzip.decompress(service.store.read(squashed.layers[-1].digest))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        names = sorted(m.name for m in tar.getmembers())
    # only what hides something of the base stays a whiteout; usr was deleted and remade
    assert names == ["etc", "etc/.wh.group", "file_2", "file_3", "usr", "usr/.wh..wh..opq",
                     "usr/new"]  # fmt: skip
