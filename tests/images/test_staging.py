"""Where the root disk's tree is staged: tmpfs when it has room, the disk otherwise, and
back to the disk when tmpfs fills during the build."""

from __future__ import annotations

import os
import subprocess

import pytest

from hyperd.images import ImageService, service, staging

from .imagebuilder import build_image, compress, f, tar_bytes


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


def test_uncompressed_size_of_zstd_is_unknown(tmp_path):
    """zstd streams need not say their size: unknown, so the disk is used."""
    path, _ = _layer(tmp_path, "layer", "zstd")
    assert staging.uncompressed_size(path) is None
    assert staging.build_dir([path], tmp_path / "disk", tmpfs=tmp_path) == tmp_path / "disk"


def test_small_layers_go_to_tmpfs(tmp_path):
    path, _ = _layer(tmp_path, "layer", "gzip")
    assert staging.build_dir([path], tmp_path / "disk", tmpfs=tmp_path) == tmp_path


def test_layers_too_big_for_memory_go_to_disk(tmp_path):
    """Layers whose gzip trailers claim ~4 GiB each, 64 of them: more than any room here."""
    layers = []
    for i in range(64):
        path = tmp_path / f"big{i}"
        path.write_bytes(b"\x1f\x8b" + b"\0" * 20 + (0xFFFF_FFF0).to_bytes(4, "little"))
        layers.append(path)
    assert staging.build_dir(layers, tmp_path / "disk", tmpfs=tmp_path) == tmp_path / "disk"


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs: too small for any image's tree."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_tmpfs_filling_up_sends_the_build_to_disk(tmp_path, registry, repo, tiny_tmpfs,
                                                  monkeypatch):  # fmt: skip
    """tmpfs that fills during the flatten (ENOSPC) is left clean and the disk is used."""
    registry.pusher().push_image(repo, "big", build_image([[f("big", os.urandom(256 << 10))]]))
    svc = ImageService(tmp_path / "store")
    name = f"{registry.host}/{repo}:big"
    svc.pull(name)
    monkeypatch.setattr(staging, "build_dir", lambda layers, fallback: tiny_tmpfs)
    tried = []
    real = service.build_image
    monkeypatch.setattr(service, "build_image", lambda *a: tried.append(a[3]) or real(*a))
    disk = svc.rootfs_path(name)
    assert tried == [tiny_tmpfs, svc.rootfs_dir]
    assert disk.exists() and disk.stat().st_size > 256 << 10
    assert list(tiny_tmpfs.iterdir()) == []
    assert [p for p in svc.rootfs_dir.iterdir() if p != disk] == []
