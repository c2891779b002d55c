"""Reading a layer blob as its uncompressed tar stream, fast enough to read every layer once
per pull: inflated in large steps, hashed a step at a time as it is read.

``gzip.GzipFile`` reads its input 8 KiB at a time and keeps its own CRC in Python, and a
reader wrapped around it to hash costs a copy and a call per read: on a 100 MB image that
was about half of a layer scan. :class:`Gunzip` lets zlib check each member's CRC and
length, reads 256 KiB at a time and inflates at most 1 MiB per step, so a small blob that
inflates hugely never sits in memory at once. Tar streams are read with
:data:`TAR_BUFSIZE` (tarfile's default, 10 KiB, costs a Python call per 10 KiB; 1 MiB is
slower again, as tarfile joins its buffers by copying).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zlib
from typing import BinaryIO

import zstandard

TAR_BUFSIZE = 1 << 16
READ_SIZE = 1 << 18  # compressed bytes per read
INFLATE_MAX = 1 << 20  # uncompressed bytes per zlib step
GZIP = 16 + zlib.MAX_WBITS  # a gzip header and trailer, checked by zlib
#: what a damaged blob raises while it is read (a tar error aside)
CORRUPT = (EOFError, gzip.BadGzipFile, zstandard.ZstdError)


def open_layer(path: str | os.PathLike, hashed: bool = False) -> LayerReader:
    """Open a layer blob as its uncompressed tar stream (gzip, zstd or plain, by magic);
    ``hashed``: keep the sha256 of that stream (``digest()`` once it is read whole)."""
    f = open(path, "rb")  # noqa: SIM115 - the reader closes it
    magic = f.read(4)
    f.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return Gunzip(f, hashed)
    if magic == b"\x28\xb5\x2f\xfd":
        return Unzstd(f, hashed)
    return LayerReader(f, hashed)


def read_tar(stream: BinaryIO) -> tarfile.TarFile:
    """A tar stream's members, in one pass (tarfile's stream mode) with large reads."""
    return tarfile.open(fileobj=stream, mode="r|", bufsize=TAR_BUFSIZE)


class LayerReader(io.RawIOBase):
    """A layer's tar stream, produced a chunk at a time by ``_chunk`` (here: the file as it
    is) and hashed chunk by chunk when ``hashed``."""

    def __init__(self, f: BinaryIO, hashed: bool = False):
        self._f = f
        self._hash = hashlib.sha256() if hashed else None
        self._out = b""
        self._pos = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left when negative); b"" at the end."""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(TAR_BUFSIZE), b""))
        while self._pos >= len(self._out):
            if self._done:
                return b""
            self._next()
        data = self._out[self._pos : self._pos + size]
        self._pos += len(data)
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def _next(self) -> None:
        self._out, self._pos = self._chunk(), 0
        if not self._out:
            self._done = True
        elif self._hash is not None:
            self._hash.update(self._out)

    def _chunk(self) -> bytes:
        return self._f.read(INFLATE_MAX)

    def drain(self) -> None:
        """Read (and hash) what is left of the stream."""
        while not self._done:
            self._next()

    def digest(self) -> str:
        """The sha256 digest of the stream read so far, as ``sha256:<hex>``."""
        assert self._hash is not None, "opened without hashed=True"
        return "sha256:" + self._hash.hexdigest()

    def close(self) -> None:
        """Close the blob file too."""
        self._f.close()
        super().close()


class Gunzip(LayerReader):
    """The inflated content of a gzip blob (one or more members, zero padding after them,
    as ``gzip`` allows). A corrupt member raises ``gzip.BadGzipFile``; a truncated one
    ``EOFError``, as ``GzipFile`` does."""

    def __init__(self, f: BinaryIO, hashed: bool = False):
        super().__init__(f, hashed)
        self._zlib = zlib.decompressobj(GZIP)
        self._input = b""

    def _chunk(self) -> bytes:
        while True:
            if not self._input:
                self._input = self._f.read(READ_SIZE)
                if not self._input:
                    if not self._zlib.eof:
                        raise EOFError("compressed file ended before the end-of-stream marker")
                    return b""
            if self._zlib.eof:  # the next member, after any zero padding
                self._input = self._input.lstrip(b"\0")
                if not self._input:
                    continue
                self._zlib = zlib.decompressobj(GZIP)
            try:
                out = self._zlib.decompress(self._input, INFLATE_MAX)
            except zlib.error as e:
                raise gzip.BadGzipFile(f"corrupt gzip data: {e}") from None
            z = self._zlib
            self._input = z.unused_data if z.eof else z.unconsumed_tail
            if out:
                return out


class Unzstd(LayerReader):
    """The content of a zstd blob (frames one after another)."""

    def __init__(self, f: BinaryIO, hashed: bool = False):
        super().__init__(f, hashed)
        self._zstd = zstandard.ZstdDecompressor().stream_reader(
            f, read_across_frames=True, closefd=False
        )

    def _chunk(self) -> bytes:
        return self._zstd.read(INFLATE_MAX)
