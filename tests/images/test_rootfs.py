"""Layer flattening (whiteouts, links, devices, metadata), safety, and root disk images."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from hyperd.images import ImageError, ImageService, UnsafeLayerEntry, rootfs
from hyperd.images.errors import RootfsBuildError
from hyperd.images.rootfs import flatten

from .imagebuilder import Entry, build_image, compress, d, f, hard, sym, tar_bytes
from .treecmp import describe, mounted

MT = 1_600_000_000


def apply(tmp: Path, layers, compression="gzip") -> Path:
    root = tmp / "root"
    root.mkdir(exist_ok=True)
    files = []
    for i, entries in enumerate(layers):
        p = tmp / f"layer{i}"
        p.write_bytes(compress(tar_bytes(entries), compression))
        files.append(p)
    flatten(files, root)
    return root


def test_whiteouts_and_opaque_dirs(tmp_path):
    lower = [
        d("etc"), f("etc/keep", "k"), f("etc/gone", "g"), d("etc/sub"), f("etc/sub/x", "x"),
        d("opq"), f("opq/old", "o"), d("opq/deep"), f("opq/deep/old", "o"),
        d("opq2"), f("opq2/old", "o"),
    ]  # fmt: skip
    upper = [
        f("etc/.wh.gone"), f("etc/.wh.sub"), f("etc/.wh.never-existed"),
        d("opq"), f("opq/.wh..wh..opq"), f("opq/new", "n"), d("opq/deep"), f("opq/deep/new", "n"),
        d("opq2"), f("opq2/new", "n"), f("opq2/.wh..wh..opq"),  # marker after same-layer entry
        f(".wh..wh.plnk"),
    ]  # fmt: skip
    root = apply(tmp_path, [lower, upper])
    assert sorted(os.listdir(root / "etc")) == ["keep"]
    assert sorted(os.listdir(root / "opq")) == ["deep", "new"]
    assert sorted(os.listdir(root / "opq/deep")) == ["new"]
    assert sorted(os.listdir(root / "opq2")) == ["new"]
    assert not any(n.startswith(".wh.") for n in os.listdir(root))


def test_entry_types_and_metadata(tmp_path):
    layer = [
        d("bin", mtime=MT), f("bin/tool", "#!/bin/sh\n", 0o4755, uid=1000, gid=50, mtime=MT),
        hard("bin/tool2", "bin/tool"), sym("bin/sh", "tool", mtime=MT),
        d("dev"), Entry("dev/null", "chardev", major=1, minor=3, mode=0o666),
        Entry("dev/loop0", "blockdev", major=7, minor=0, mode=0o660, gid=6),
        Entry("run-fifo", "fifo", mode=0o640), d("tmp", mode=0o1777),
        f("x", "attr", xattrs={"user.comment": b"hello", "trusted.t": b"\x00\xff"}),
    ]  # fmt: skip
    root = apply(tmp_path, [layer])
    tool = os.lstat(root / "bin/tool")
    assert stat.S_IMODE(tool.st_mode) == 0o4755
    assert (tool.st_uid, tool.st_gid, int(tool.st_mtime)) == (1000, 50, MT)
    assert os.lstat(root / "bin/tool2").st_ino == tool.st_ino
    assert os.readlink(root / "bin/sh") == "tool"
    assert int(os.lstat(root / "bin/sh").st_mtime) == MT
    assert int(os.lstat(root / "bin").st_mtime) == MT
    null = os.lstat(root / "dev/null")
    assert (
        stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    )
    assert stat.S_ISBLK(os.lstat(root / "dev/loop0").st_mode)
    assert stat.S_ISFIFO(os.lstat(root / "run-fifo").st_mode)
    assert stat.S_IMODE(os.lstat(root / "tmp").st_mode) == 0o1777
    assert os.getxattr(root / "x", "user.comment") == b"hello"
    assert os.getxattr(root / "x", "trusted.t") == b"\x00\xff"


@pytest.mark.parametrize("compression", ["none", "zstd", "gzip"])
def test_replacements_across_layers(tmp_path, compression):
    l1 = [d("a"), f("a/f", "1"), f("b", "file"), d("c"), f("c/x", "x"), d("usr"), d("usr/lib")]
    l2 = [
        f("a", "now a file"),
        d("b"),
        f("b/inside", "2"),
        sym("c", "usr/lib"),
        sym("lib", "usr/lib"),
    ]
    l3 = [f("lib/libz.so", "z")]  # written through an in-root symlink
    root = apply(tmp_path, [l1, l2, l3], compression)
    assert (root / "a").read_text() == "now a file"
    assert (root / "b/inside").read_text() == "2"
    assert os.readlink(root / "c") == "usr/lib"
    assert (root / "usr/lib/libz.so").read_text() == "z"
    assert os.path.islink(root / "lib")


def outside_state(tmp: Path, sentinel: Path):
    return sorted(os.listdir(tmp)), describe(sentinel, dir_mtimes=True)


UNSAFE_CASES = {
    "dotdot": [[f("../escape", "x")]],
    "dotdot-inner": [[d("a"), f("a/../../escape", "x")]],
    "absolute": [[f("/etc/escape", "x")]],
    "symlink-relative-out": [[sym("evil", "../../../../../../SENTINEL")]],
    "symlink-dotdot": [[sym("up", "..")]],
    "symlink-write-through": [
        [d("d"), sym("d/link", ".."), sym("x", "d/link/.."), f("x/pwned", "x")]
    ],
    "symlink-whiteout-through": [[d("d"), sym("d/link", ".."), sym("x", "d/link/..")],
                                 [f("x/SENTINEL_NAME/.wh.keep")]],
    "symlink-opaque-through": [[d("d"), sym("d/link", ".."), sym("x", "d/link/..")],
                               [f("x/SENTINEL_NAME/.wh..wh..opq")]],
    "whiteout-dotdot": [[f(".wh...")]],
    "whiteout-dot": [[d("a"), f("a/.wh..")]],
    "hardlink-dotdot": [[hard("h", "../sentinel/keep")]],
    "hardlink-absolute": [[hard("h", "SENTINEL/keep")]],
    "hardlink-through-symlink": [[d("d"), sym("d/link", ".."), sym("x", "d/link/.."),
                                  hard("h", "x/SENTINEL_NAME/keep")]],
}  # fmt: skip


def _materialise(layers, sentinel: Path):
    out = []
    for layer in layers:
        entries = []
        for e in layer:
            e = Entry(**e.__dict__)
            e.name = e.name.replace("SENTINEL_NAME", sentinel.name)
            e.linkname = e.linkname.replace("SENTINEL_NAME", sentinel.name)
            e.linkname = e.linkname.replace("SENTINEL", str(sentinel))
            entries.append(e)
        out.append(entries)
    return out


@pytest.mark.parametrize("case", sorted(UNSAFE_CASES))
def test_unsafe_entries_refused(tmp_path, sentinel, case):
    work = tmp_path / "work"
    work.mkdir()
    before = outside_state(tmp_path, sentinel)
    layers = _materialise(UNSAFE_CASES[case], sentinel)
    with pytest.raises(UnsafeLayerEntry) as exc:
        apply(work, layers)
    assert exc.value.to_dict()["entry"]
    assert outside_state(tmp_path, sentinel) == before
    assert os.lstat(sentinel / "keep").st_nlink == 1


def test_absolute_symlinks_resolve_inside_root(tmp_path, sentinel):
    """An absolute parent symlink is followed as in a chroot: it never reaches the host."""
    work = tmp_path / "work"
    work.mkdir()
    before = outside_state(tmp_path, sentinel)
    layers = [
        [sym("abs", str(sentinel)), f("abs/pwned", "x"), sym("rootlink", "/")],
        [f("rootlink/" + str(sentinel).lstrip("/") + "/.wh.keep"), f("abs/.wh..wh..opq")],
    ]
    root = apply(work, layers)
    assert outside_state(tmp_path, sentinel) == before
    assert os.readlink(root / "abs") == str(sentinel)
    assert os.path.isdir(root / str(sentinel).lstrip("/"))
    work2 = tmp_path / "work2"
    work2.mkdir()
    with pytest.raises(ImageError, match="does not exist"):
        apply(work2, [[sym("abs", str(sentinel)), hard("h", "abs/keep")]])
    assert os.lstat(sentinel / "keep").st_nlink == 1


def test_a_replaced_parent_is_looked_up_again(tmp_path, sentinel):
    """A directory replaced by an absolute symlink, and a symlink by a directory, in one
    layer: later entries under that name go where it now leads, inside the root (the
    flattener remembers resolved parents, and must forget them here)."""
    work = tmp_path / "work"
    work.mkdir()
    before = outside_state(tmp_path, sentinel)
    root = apply(
        work,
        [
            [d("was-dir"), f("was-dir/one"), sym("was-dir", str(sentinel)), f("was-dir/pwned")],
            [sym("was-link", str(sentinel)), f("was-link/two"), d("was-link"), f("was-link/3")],
        ],
    )
    assert outside_state(tmp_path, sentinel) == before
    assert sorted(os.listdir(root / str(sentinel).lstrip("/"))) == ["pwned", "two"]
    assert os.listdir(root / "was-link") == ["3"]


def rich_image(compression=("gzip", "zstd", "none")):
    """Layers exercising every feature, for comparison with a reference extraction."""
    l1 = [
        d("etc", mtime=MT), f("etc/passwd", "root:x:0:0::/root:/bin/sh\n", mtime=MT),
        f("etc/gone", "bye", mtime=MT), d("etc/dir-gone", mtime=MT),
        f("etc/dir-gone/f", "f", mtime=MT), d("var", mtime=MT), d("var/opq", mtime=MT),
        f("var/opq/lower", "l", mtime=MT), d("usr", mtime=MT), d("usr/bin", mtime=MT),
        f("usr/bin/prog", os.urandom(20000), 0o755, mtime=MT),
        f("usr/bin/suid", "s", 0o4711, uid=0, gid=0, mtime=MT),
        d("home", mtime=MT), d("home/u", 0o700, uid=1000, gid=1000, mtime=MT),
        f("home/u/.profile", "p", 0o600, uid=1000, gid=1000, mtime=MT),
    ]  # fmt: skip
    l2 = [
        d("etc", mtime=MT), f("etc/.wh.gone", mtime=MT), f("etc/.wh.dir-gone", mtime=MT),
        d("var", mtime=MT), d("var/opq", 0o750, mtime=MT), f("var/opq/.wh..wh..opq", mtime=MT),
        f("var/opq/upper", "u", mtime=MT), d("bin", mtime=MT),
        hard("bin/prog-link", "usr/bin/prog"), sym("bin/sh", "/usr/bin/prog", mtime=MT),
        d("dev", mtime=MT), Entry("dev/null", "chardev", major=1, minor=3, mode=0o666, mtime=MT),
        Entry("dev/fifo", "fifo", mode=0o644, mtime=MT), d("tmp", 0o1777, mtime=MT),
    ]  # fmt: skip
    l3 = [d("usr", mtime=MT), d("usr/bin", mtime=MT), f("usr/bin/new", "n", 0o755, mtime=MT)]
    return build_image([l1, l2, l3], compression=list(compression))


@pytest.fixture
def pulled_rich(registry, service, repo):
    img = rich_image(("gzip", "none", "gzip"))  # Debian's umoci has no zstd
    registry.pusher().push_image(repo, "rich", img)
    name = f"{registry.host}/{repo}:rich"
    rec = service.pull(name)
    return name, rec


def test_flatten_matches_umoci(tmp_path, registry, service, pulled_rich):
    if not (shutil.which("skopeo") and shutil.which("umoci")):
        pytest.skip("skopeo/umoci not installed")
    name, rec = pulled_rich
    ours = tmp_path / "ours"
    ours.mkdir()
    flatten([service.store.path(x.digest) for x in rec.layers], ours)
    layout = tmp_path / "img-layout"
    subprocess.run(
        ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{name}", f"oci:{layout}:t"],
        check=True,
    )
    ref = tmp_path / "umoci"
    subprocess.run(["umoci", "raw", "unpack", "--image", f"{layout}:t", str(ref)], check=True)
    want = describe(ref, dir_mtimes=False)
    assert {"etc/passwd", "var/opq/upper", "bin/prog-link", "dev/null", "dev/fifo"} <= set(want)
    assert {"etc/gone", "etc/dir-gone", "var/opq/lower"}.isdisjoint(want)
    assert want["#hardlinks"] == (("bin/prog-link", "usr/bin/prog"),)
    assert describe(ours, dir_mtimes=False) == want


@pytest.mark.parametrize("fstype", ["erofs", "ext4"])
def test_root_disk_contains_tree(tmp_path, registry, repo, fstype):
    img = rich_image()
    registry.pusher().push_image(repo, "rich", img)
    svc = ImageService(tmp_path / "store", {"rootfs_fstype": fstype})
    name = f"{registry.host}/{repo}:rich"
    rec = svc.pull(name)
    disk = svc.rootfs_dir / f"{rec.id[7:]}.{fstype}"
    mtime = disk.stat().st_mtime  # the pull built it
    assert svc.rootfs_path(name) == disk and disk.stat().st_mtime == mtime
    assert svc.rootfs_path(rec.id) == disk and disk.stat().st_mtime == mtime  # built once
    assert not [p for p in svc.rootfs_dir.iterdir() if p != disk]  # no temp leftovers
    tree = tmp_path / "tree"
    tree.mkdir()
    flatten([svc.store.path(x.digest) for x in rec.layers], tree)
    try:
        with mounted(disk, fstype, tmp_path / "mnt") as mnt:
            got = describe(mnt, dir_mtimes=True)
    except subprocess.CalledProcessError as e:
        pytest.skip(f"cannot loop-mount here: {e.stderr}")
    want = describe(tree, dir_mtimes=True)
    want.pop(".", None)
    assert got == want
    assert stat.S_IMODE(os.stat(disk).st_mode) == 0o444


@pytest.mark.registry
def test_a_pull_whose_mkfs_fails_lists_the_image_and_the_run_says_why(
    tmp_path, registry, repo, monkeypatch
):
    """The layers were read whole and found sound, so the image is listed; the disk is
    built (or refused, with the reason) when a container needs it."""
    registry.pusher().push_image(repo, "t", build_image([[f("a", "a")]]))
    svc = ImageService(tmp_path / "store")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no mkfs.erofs
    monkeypatch.setattr(rootfs, "TOOL_DIR", str(tmp_path / "nothing"))
    rec = svc.pull(f"{registry.host}/{repo}:t")
    assert [r.id for r in svc.list()] == [rec.id] and not list(svc.rootfs_dir.iterdir())
    with pytest.raises(RootfsBuildError, match="mkfs.erofs is not installed"):
        svc.rootfs_path(rec.id)
    monkeypatch.undo()
    assert svc.rootfs_path(rec.id).stat().st_size > 0


def test_corrupt_layer_is_an_image_error(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(compress(b"this is not a tar archive at all" * 20, "gzip"))
    (tmp_path / "root").mkdir()
    with pytest.raises(ImageError, match="^image: layer bad is corrupt: "):
        flatten([p], tmp_path / "root")


@pytest.mark.registry
def test_diff_id_mismatch_refused(tmp_path, registry, repo):
    import json

    from hyperd.images import DigestMismatch

    from .imagebuilder import OCI_CONFIG, digest_of

    img = build_image([[f("a", "a")], [f("b", "b")]])
    config = json.loads(img.config)
    config["rootfs"]["diff_ids"][1] = digest_of(b"something else")
    raw_cfg = json.dumps(config).encode()
    manifest = json.loads(img.manifest)
    manifest["config"] = {
        "mediaType": OCI_CONFIG,
        "digest": digest_of(raw_cfg),
        "size": len(raw_cfg),
    }
    img.blobs = {
        **{k: v for k, v in img.blobs.items() if k != img.config_digest},
        digest_of(raw_cfg): raw_cfg,
    }
    img.config, img.manifest = raw_cfg, json.dumps(manifest).encode()
    registry.pusher().push_image(repo, "lie", img)
    svc = ImageService(tmp_path / "store")
    with pytest.raises(DigestMismatch, match="the image config says"):
        svc.pull(f"{registry.host}/{repo}:lie")  # checked before the image is listed
    assert svc.list() == [] and svc.store.digests() == set()
    (tmp_path / "root").mkdir()
    with pytest.raises(DigestMismatch, match="the image config says"):  # and when flattening
        flatten(
            [registry.blob_path(d) for d in img.layer_digests],
            tmp_path / "root",
            config["rootfs"]["diff_ids"],
        )
