"""Where the root disk's tree is staged: tmpfs when it has room, the disk otherwise, and
back to the disk when tmpfs gives out (full, an xattr refused, a tree past its layers'
stated size); the result is the same root disk either way."""

from __future__ import annotations

import os
import subprocess
import threading

import pytest

from hyperd.images import ImageService, service, staging

from .imagebuilder import build_image, compress, f, tar_bytes
from .treecmp import mounted

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts tmpfs: needs root")


def _layer(tmp_path, name: str, compression: str) -> tuple:
    raw = tar_bytes([f("data", b"x" * 50_000)])
    path = tmp_path / name
    path.write_bytes(compress(raw, compression))
    return path, len(raw)


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_uncompressed_size_is_the_tar_size(tmp_path, compression):
    """gzip's trailer, or a plain tar's own size, gives the expanded size exactly."""
    path, size = _layer(tmp_path, "layer", compression)
    assert staging.uncompressed_size(path) == size


def test_zstd_layers_are_not_staged(tmp_path):
    """zstd streams need not say their size: unknown, so the disk is used."""
    path, _ = _layer(tmp_path, "layer", "zstd")
    assert staging.uncompressed_size(path) is None
    with staging.Staging(tmp_path / "root", tmpfs=tmp_path).reserve([path]) as held:
        assert held is None


def test_room_is_held_while_a_build_runs_and_given_back(tmp_path):
    path, size = _layer(tmp_path, "layer", "gzip")
    st = staging.Staging(tmp_path / "root", tmpfs=tmp_path)
    with st.reserve([path]) as held:
        assert held == size
        assert st._held == staging.PAGE_BOUND * size
    assert st._held == 0


def test_layers_too_big_for_memory_go_to_disk(tmp_path):
    """Layers whose gzip trailers claim ~4 GiB each, 64 of them: more than any room here."""
    layers = []
    for i in range(64):
        path = tmp_path / f"big{i}"
        path.write_bytes(b"\x1f\x8b" + b"\0" * 20 + (0xFFFF_FFF0).to_bytes(4, "little"))
        layers.append(path)
    with staging.Staging(tmp_path / "root", tmpfs=tmp_path).reserve(layers) as held:
        assert held is None


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 4 MiB tmpfs: room for a small image's tree only."""
    mnt = tmp_path / "shm"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def staged(tmp_path, small_tmpfs, monkeypatch, registry, repo):
    """make(layers): a store with an image of ``layers`` pulled, staging on the small
    tmpfs; (service, image name, the directories each build was tried in, with their
    modes then in ``make.modes``)."""
    monkeypatch.setattr(staging, "TMPFS", small_tmpfs)

    def make(layers):
        registry.pusher().push_image(repo, "t", build_image(layers))
        svc = ImageService(tmp_path / "store", {"unpack": True})  # staging serves unpacking
        name = f"{registry.host}/{repo}:t"
        svc.pull(name)
        for disk in svc.rootfs_dir.iterdir():  # the pull built it: build it again, watched
            disk.unlink()
        tried, real = [], service.build_image

        def build(*a, **k):
            tried.append(a[3])
            make.modes[a[3]] = a[3].stat().st_mode & 0o777
            return real(*a, **k)

        monkeypatch.setattr(service, "build_image", build)
        return svc, name, tried

    make.modes = {}

    return make


def test_a_small_image_is_staged_on_tmpfs_and_leaves_nothing(tmp_path, small_tmpfs, staged):
    layers = [[f("etc/hello", b"hello\n"), f("bin/tool", os.urandom(64 << 10), mode=0o755)]]
    svc, name, tried = staged(layers)
    disk = svc.rootfs_path(name)
    assert tried == [svc.staging.dir] and svc.staging.dir.parent == small_tmpfs
    assert staged.modes[svc.staging.dir] == 0o700  # root's alone while the tree is there
    assert not svc.staging.dir.exists()  # nothing left on tmpfs once the build is done
    with mounted(disk, "erofs", tmp_path / "mnt") as mnt:
        assert (mnt / "etc" / "hello").read_bytes() == b"hello\n"


def test_tmpfs_filling_up_sends_the_build_to_disk(tmp_path, small_tmpfs, staged, monkeypatch):
    """tmpfs filled by someone else during the flatten (ENOSPC): the disk is used."""
    svc, name, tried = staged([[f("big", os.urandom(512 << 10))]])
    filler = small_tmpfs / "filler"
    with open(filler, "wb") as out:  # leaves less than the image needs, after the check
        out.write(b"\0" * (3800 << 10))
    monkeypatch.setattr(staging.Staging, "_room", lambda self: 1 << 40)  # as it was before
    disk = svc.rootfs_path(name)
    assert tried == [svc.staging.dir, svc.rootfs_dir]
    assert disk.stat().st_size > 512 << 10
    assert not svc.staging.dir.exists()


def test_a_tree_past_its_layers_stated_size_goes_to_disk(
    tmp_path, small_tmpfs, staged, monkeypatch
):
    """A gzip trailer that understates its layer holds the staged build to that size."""
    svc, name, tried = staged([[f("data", os.urandom(200 << 10))]])
    monkeypatch.setattr(staging, "uncompressed_size", lambda path: 1000)
    disk = svc.rootfs_path(name)
    assert tried == [svc.staging.dir, svc.rootfs_dir]
    assert disk.stat().st_size > 200 << 10


def test_an_xattr_tmpfs_refuses_sends_the_build_to_disk_and_keeps_it(tmp_path, small_tmpfs, staged):
    """user.* xattrs (refused by tmpfs before Linux 6.6) end up on the root disk as on disk."""
    svc, name, tried = staged([[f("tagged", b"x", xattrs={"user.hyper": b"kept"})]])
    probe = small_tmpfs / "probe"
    probe.touch()
    try:
        os.setxattr(probe, "user.hyper", b"1")
        takes_user_xattrs = True
    except OSError:
        takes_user_xattrs = False
    disk = svc.rootfs_path(name)
    want = [svc.staging.dir] if takes_user_xattrs else [svc.staging.dir, svc.rootfs_dir]
    assert tried == want
    with mounted(disk, "erofs", tmp_path / "mnt") as mnt:
        assert os.getxattr(mnt / "tagged", "user.hyper") == b"kept"


def test_a_daemon_start_empties_its_staging_dir(tmp_path):
    """What a build cut short by a crash left on tmpfs goes when the daemon starts again."""
    st = staging.Staging(tmp_path / "root", tmpfs=tmp_path)
    (st.workdir() / ".build-x").mkdir()
    staging.Staging(tmp_path / "root", tmpfs=tmp_path)
    assert not st.dir.exists()


def test_concurrent_reservations_share_the_room(tmp_path, monkeypatch):
    """Two builds at once may not each take all the room."""
    path, size = _layer(tmp_path, "layer", "gzip")
    st = staging.Staging(tmp_path / "root", tmpfs=tmp_path)
    monkeypatch.setattr(staging.Staging, "_room", lambda self: staging.PAGE_BOUND * size)
    first_in, release = threading.Event(), threading.Event()
    got = []

    def first():
        with st.reserve([path]) as held:
            got.append(held)
            first_in.set()
            release.wait(5)

    t = threading.Thread(target=first)
    t.start()
    first_in.wait(5)
    with st.reserve([path]) as held:
        got.append(held)
    release.set()
    t.join()
    assert got == [size, None]
