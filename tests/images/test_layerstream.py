"""Layer blobs read as tar streams: gzip members and padding, zstd, plain tars, their
digests, damage reported as a corrupt layer, and inflation in bounded steps."""

from __future__ import annotations

import gzip
import hashlib
import os

import pytest

from hyperd.images import ImageError
from hyperd.images.layerstream import INFLATE_MAX, open_layer
from hyperd.images.rootfs import flatten

from .imagebuilder import compress, f, tar_bytes

RAW = tar_bytes([f("a", os.urandom(300 << 10)), f("b", b"text " * 100_000)])


def _read(path, **kw) -> bytes:
    with open_layer(path, **kw) as stream:
        return stream.read()


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_each_format_reads_back_the_tar_and_its_digest(tmp_path, compression):
    blob = tmp_path / "blob"
    blob.write_bytes(compress(RAW, compression))
    with open_layer(blob, hashed=True) as stream:
        assert stream.read(1000) == RAW[:1000]
        stream.drain()
        assert stream.digest() == "sha256:" + hashlib.sha256(RAW).hexdigest()


def test_gzip_members_and_zero_padding_read_as_one_stream(tmp_path):
    """As gzip(1) and Python's gzip module read them."""
    blob = tmp_path / "blob"
    half = len(RAW) // 2
    blob.write_bytes(gzip.compress(RAW[:half]) + gzip.compress(RAW[half:]) + b"\0" * 1000)
    assert _read(blob) == RAW == gzip.decompress(blob.read_bytes())


@pytest.mark.parametrize(
    "damage",
    [
        lambda gz: gz[: len(gz) // 2],  # truncated
        lambda gz: gz[:-8] + bytes(8),  # CRC and length trailer wrong
        lambda gz: gz[:100] + bytes(x ^ 0xFF for x in gz[100:200]) + gz[200:],
        lambda gz: gz + b"garbage after the last member",
    ],
    ids=["truncated", "bad-trailer", "flipped-bytes", "trailing-garbage"],
)
def test_a_damaged_gzip_is_a_corrupt_layer_naming_the_image(tmp_path, damage):
    blob = tmp_path / "0123456789abcdef"
    blob.write_bytes(damage(gzip.compress(RAW)))
    (tmp_path / "root").mkdir()
    with pytest.raises(ImageError, match=r"^img: layer 0123456789ab is corrupt: "):
        flatten([blob], tmp_path / "root", image="img")


def test_a_bomb_is_inflated_a_bounded_step_at_a_time(tmp_path):
    """64 MiB of zeros in a 64 KiB blob: no read returns more than one step."""
    blob = tmp_path / "blob"
    blob.write_bytes(gzip.compress(bytes(64 << 20), 9))
    assert blob.stat().st_size < 100 << 10
    with open_layer(blob) as stream:
        sizes = list(iter(lambda: len(stream.read(16 << 20)), 0))
    assert sum(sizes) == 64 << 20 and max(sizes) <= INFLATE_MAX
