"""``docker import``: a filesystem tarball (plain or compressed) becomes a one-layer image.

The source is the request body or a URL. With no network but loopback, a URL must name a
loopback host (``http://127.0.0.1:8000/rootfs.tar``); anything else is refused clearly.
"""

from __future__ import annotations

import bz2
import gzip
import ipaddress
import lzma
import tarfile
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import requests
import zstandard

from hyperd.errors import InvalidArgument
from hyperd.images.build.metadata import apply_changes
from hyperd.images.commit import Layer, NewImage, create_image
from hyperd.images.errors import ImageError
from hyperd.images.layer import store_layer
from hyperd.images.manifest import DOCKER_LAYER_GZIP
from hyperd.images.store import ImageRecord

CHUNK = 1 << 20


def decompressed(f: BinaryIO) -> BinaryIO:
    """The stream ``f`` holds, decompressed by its magic (gzip, bzip2, xz, zstd or none)."""
    head = f.peek(6)[:6] if hasattr(f, "peek") else b""
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")
    if head[:3] == b"BZh":
        return bz2.BZ2File(f)
    if head[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(f)
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
    return f


def copy_tar(src: BinaryIO, out: BinaryIO) -> None:
    """Copy a tar stream entry by entry (so anything that is not a tar is refused)."""
    try:
        with (
            tarfile.open(fileobj=src, mode="r|") as tin,
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tout,
        ):
            for m in tin:
                tout.addfile(m, tin.extractfile(m) if m.isreg() else None)
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zstandard.ZstdError) as e:
        raise InvalidArgument(f"the import source is not a (compressed) tar archive: {e}") from None


def is_loopback_url(url: str) -> bool:
    """Does ``url`` (http or https) name a loopback host?"""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https"):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> None:
    """Refuse a source URL this daemon may not fetch (anything but loopback http(s))."""
    if not is_loopback_url(url):
        raise InvalidArgument(
            f"cannot fetch {url!r}: only http(s) URLs on a loopback host are allowed "
            "(hyperd reaches no other network); send the file as the request body instead"
        )


def fetch(url: str, dest: Path, progress=None, timeout: float = 30.0) -> None:
    """Download ``url`` (loopback only: this daemon sends nothing elsewhere) to ``dest``."""
    check_url(url)
    try:
        with requests.get(url, stream=True, timeout=timeout) as resp:
            if resp.status_code != 200:
                raise ImageError(f"GET {url}: HTTP {resp.status_code}")
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            with open(dest, "wb") as f:
                for chunk in resp.iter_content(CHUNK):
                    f.write(chunk)
                    done += len(chunk)
                    if progress:
                        detail = {"current": done, "total": total}
                        progress({"status": "Downloading", "progressDetail": detail})
    except requests.RequestException as e:
        raise ImageError(f"GET {url} failed: {e}") from None


def import_tarball(
    svc,
    path: Path,
    *,
    source: str = "-",
    names: list[str] = (),
    message: str = "",
    changes: list[str] = (),
) -> ImageRecord:
    """Make the one-layer image of the tarball at ``path``; name it ``names``."""
    config = apply_changes({}, list(changes))
    comment = message or f"Imported from {source}"

    def fill(out: BinaryIO) -> None:
        with open(path, "rb", buffering=CHUNK) as raw:
            copy_tar(decompressed(raw), out)

    with svc.writing():
        desc, diff_id = store_layer(svc.store, fill, DOCKER_LAYER_GZIP)
        new = NewImage(config, Layer(desc, diff_id), comment=comment)
        return create_image(svc, None, new, list(names))
