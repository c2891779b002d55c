"""Image expansion limits: a small layer naming a huge sparse file, a gzip bomb, too many
files, too deep a tree; refused while flattening and, through the real registry and a real
archive, at pull and load time, before the image is listed, its blobs removed."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from hyperd.images import ImageService
from hyperd.images.limits import ImageLimits, ImageTooLarge
from hyperd.images.rootfs import flatten, scan_layers

from .imagebuilder import OCI_CONFIG, OCI_MANIFEST, compress, d, digest_of, f, tar_bytes


def sparse_layer(tmp: Path, size: str = "1G") -> bytes:
    """A gzip'd GNU tar holding one sparse file of ``size`` (a few KiB on the wire)."""
    src = tmp / "sparse-src"
    src.mkdir()
    subprocess.run(["truncate", "-s", size, str(src / "big")], check=True)
    out = subprocess.run(
        ["tar", "--sparse", "--format=gnu", "-C", str(src), "-czf", "-", "big"],
        check=True,
        capture_output=True,
    ).stdout
    return out


def zeros_layer(mib: int) -> bytes:
    """A gzip bomb: one file of ``mib`` MiB of zeros, streamed (never held uncompressed)."""
    buf = io.BytesIO()
    info = tarfile.TarInfo("zeros")
    info.size = mib << 20
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.addfile(info, _Zeros(info.size))
    return buf.getvalue()


class _Zeros(io.RawIOBase):
    def __init__(self, n: int):
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def _write(tmp: Path, blob: bytes, name: str = "layer") -> Path:
    p = tmp / name
    p.write_bytes(blob)
    return p


def test_a_small_layer_with_a_huge_sparse_file_is_refused_at_its_header(tmp_path):
    layer = _write(tmp_path, sparse_layer(tmp_path))
    assert layer.stat().st_size < 64 << 10
    with pytest.raises(ImageTooLarge, match=r"expands \d+x: 1.0 GiB from a \d+-byte blob"):
        scan_layers([layer], None, None, "bomb:1")
    (tmp_path / "root").mkdir()
    with pytest.raises(ImageTooLarge):
        flatten([layer], tmp_path / "root")
    assert list((tmp_path / "root").iterdir()) == []  # refused before anything was written


def test_a_gzip_bomb_is_refused(tmp_path):
    layer = _write(tmp_path, zeros_layer(300))
    assert layer.stat().st_size < 1 << 20
    with pytest.raises(ImageTooLarge, match="limit 200x"):
        scan_layers([layer], None, None, "bomb:2")
    # The same layer is fine for a daemon configured to allow it.
    scan_layers([layer], None, ImageLimits(max_ratio=5000), "bomb:2")


@pytest.mark.parametrize(
    "limits, entries, message",
    [
        (ImageLimits(max_files=3), [d("a"), f("a/1"), f("a/2"), f("a/3")], "more than 3 files"),
        (
            ImageLimits(max_depth=4),
            [f("a/b/c/d/e", "deep")],
            r"an entry 5 directories deep \(limit 4\)",
        ),
        (
            ImageLimits(max_size=1 << 20),
            [f("x", b"\1" * (600 << 10)), f("y", b"\2" * (600 << 10))],
            "expands past 1 MiB",
        ),
    ],
)
def test_file_count_depth_and_size_caps(tmp_path, limits, entries, message):
    layer = _write(tmp_path, compress(tar_bytes(entries), "gzip"))
    with pytest.raises(ImageTooLarge, match=message):
        scan_layers([layer], None, limits, "img")
    (tmp_path / "root").mkdir()
    with pytest.raises(ImageTooLarge, match=message):
        flatten([layer], tmp_path / "root", limits=limits)


def test_limits_from_the_config():
    got = ImageLimits.from_config({"max-size": "2g", "max-files": 10, "max-ratio": 5})
    assert (got.max_size, got.max_files, got.max_depth, got.max_ratio) == (2 << 30, 10, 256, 5)
    with pytest.raises(Exception, match="unknown keys max-sise"):
        ImageLimits.from_config({"max-sise": "2g"})


def _bomb_image(tmp_path: Path):
    """An image of a small base layer and the sparse-file layer (the issue's 10 KiB/1 GiB)."""
    base_raw = tar_bytes([d("etc"), f("etc/os-release", "ID=bomb\n")])
    base = compress(base_raw, "gzip")
    bomb = sparse_layer(tmp_path)
    diff_ids = [digest_of(base_raw), digest_of(gzip.decompress(bomb))]
    cfg = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    layers = [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest_of(b),
         "size": len(b)}
        for b in (base, bomb)
    ]  # fmt: skip
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(cfg), "size": len(cfg)},
            "layers": layers,
        }
    ).encode()
    return cfg, manifest, [base, bomb]


@pytest.mark.registry
def test_pull_and_load_refuse_the_bomb_before_listing_it(tmp_path, registry, repo):
    """Pulled from the real registry the image is refused with the layer named; nothing is
    listed and no blob stays; a permissive daemon saves it, and `load` into the strict one
    refuses it the same way."""
    cfg, manifest, layers = _bomb_image(tmp_path)
    pusher = registry.pusher()
    for blob in (cfg, *layers):
        pusher.push_blob(repo, blob)
    pusher.push_manifest(repo, "v1", manifest, OCI_MANIFEST)
    ref = f"{registry.host}/{repo}:v1"
    strict = ImageService(tmp_path / "strict")
    short = hashlib.sha256(layers[1]).hexdigest()[:12]
    with pytest.raises(ImageTooLarge, match=rf"{repo}:v1: layer {short} expands"):
        strict.pull(ref)
    assert strict.list() == [] and strict.store.digests() == set()
    loose = ImageService(tmp_path / "loose", {"limits": ImageLimits(max_ratio=10**9)})
    loose.pull(ref)
    loose.save([ref], tmp_path / "bomb.tar")
    with pytest.raises(ImageTooLarge, match=f"layer {short} expands"):
        strict.load(tmp_path / "bomb.tar")
    assert strict.list() == [] and strict.store.digests() == set()
