"""Build OCI/Docker images in memory from entry lists and push them with plain requests."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field

import requests
import zstandard

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}
MTIME = 1_700_000_000


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Entry:
    """One tar entry. kind: file, dir, symlink, hardlink, chardev, blockdev, fifo."""

    name: str
    kind: str = "file"
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    linkname: str = ""
    major: int = 0
    minor: int = 0
    mtime: int = MTIME
    xattrs: dict[str, bytes] = field(default_factory=dict)


def f(name, data=b"", mode=0o644, **kw) -> Entry:
    return Entry(name, "file", data if isinstance(data, bytes) else data.encode(), mode, **kw)


def d(name, mode=0o755, **kw) -> Entry:
    return Entry(name, "dir", mode=mode, **kw)


def sym(name, target, **kw) -> Entry:
    return Entry(name, "symlink", linkname=target, mode=0o777, **kw)


def hard(name, target, **kw) -> Entry:
    return Entry(name, "hardlink", linkname=target, **kw)


_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "chardev": tarfile.CHRTYPE,
    "blockdev": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def tar_bytes(entries: list[Entry]) -> bytes:
    """An uncompressed PAX tar of ``entries`` (in the given order)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = _TYPES[e.kind]
            info.mode, info.uid, info.gid, info.mtime = e.mode, e.uid, e.gid, e.mtime
            info.linkname = e.linkname
            info.devmajor, info.devminor = e.major, e.minor
            if e.xattrs:
                info.pax_headers = {
                    "SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape")
                    for k, v in e.xattrs.items()
                }
            if e.kind == "file":
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def compress(raw: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(raw, compresslevel=1, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=1).compress(raw)
    return raw


@dataclass
class Image:
    config: bytes
    manifest: bytes
    manifest_type: str
    blobs: dict[str, bytes]  # digest -> bytes (config and layers)
    layer_digests: list[str]

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)

    @property
    def config_digest(self) -> str:
        return digest_of(self.config)


def build_image(
    layers: list[list[Entry]],
    *,
    compression: str | list[str] = "gzip",
    arch: str = "amd64",
    config: dict | None = None,
    docker_types: bool = False,
    created: str = "2024-01-02T03:04:05Z",
) -> Image:
    """An image whose layers hold ``layers`` (bottom first)."""
    comps = compression if isinstance(compression, list) else [compression] * len(layers)
    blobs, descs, diff_ids = {}, [], []
    for entries, comp in zip(layers, comps, strict=True):
        raw = tar_bytes(entries)
        blob = compress(raw, comp)
        diff_ids.append(digest_of(raw))
        mt = LAYER_TYPES[comp]
        if docker_types and comp == "gzip":
            mt = "application/vnd.docker.image.rootfs.diff.tar.gzip"
        descs.append({"mediaType": mt, "digest": digest_of(blob), "size": len(blob)})
        blobs[digest_of(blob)] = blob
    cfg = {
        "created": created,
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"], **(config or {})},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
    }
    cfg_raw = json.dumps(cfg).encode()
    blobs[digest_of(cfg_raw)] = cfg_raw
    mtype = DOCKER_MANIFEST if docker_types else OCI_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": mtype,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json"
            if docker_types
            else OCI_CONFIG,
            "digest": digest_of(cfg_raw),
            "size": len(cfg_raw),
        },
        "layers": descs,
    }
    return Image(cfg_raw, json.dumps(manifest).encode(), mtype, blobs, [x["digest"] for x in descs])


def build_index(images: list[tuple[Image, str]]) -> bytes:
    """An OCI index over (image, "os/arch[/variant]") pairs."""
    manifests = []
    for img, plat in images:
        parts = plat.split("/")
        p = {"os": parts[0], "architecture": parts[1]}
        if len(parts) > 2:
            p["variant"] = parts[2]
        manifests.append(
            {
                "mediaType": img.manifest_type,
                "digest": img.digest,
                "size": len(img.manifest),
                "platform": p,
            }
        )
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()


class Pusher:
    """Pushes blobs and manifests to a registry with the plain HTTP API."""

    def __init__(self, base_url: str, auth=None):
        self.base = base_url.rstrip("/")
        self.s = requests.Session()
        self.s.auth = auth

    def push_blob(self, repo: str, data: bytes, digest: str | None = None) -> str:
        digest = digest or digest_of(data)
        if self.s.head(f"{self.base}/v2/{repo}/blobs/{digest}").status_code == 200:
            return digest
        r = self.s.post(f"{self.base}/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202, r.text
        loc = r.headers["Location"]
        if loc.startswith("/"):
            loc = self.base + loc
        sep = "&" if "?" in loc else "?"
        r = self.s.put(
            f"{loc}{sep}digest={digest}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 201, r.text
        return digest

    def push_manifest(self, repo: str, ref: str, raw: bytes, media_type: str) -> str:
        r = self.s.put(
            f"{self.base}/v2/{repo}/manifests/{ref}",
            data=raw,
            headers={"Content-Type": media_type},
        )
        assert r.status_code == 201, r.text
        return digest_of(raw)

    def push_image(self, repo: str, tag: str, img: Image) -> str:
        for digest, blob in img.blobs.items():
            self.push_blob(repo, blob, digest)
        return self.push_manifest(repo, tag, img.manifest, img.manifest_type)

    def push_index(self, repo: str, tag: str, images: list[tuple[Image, str]]) -> str:
        for img, _ in images:
            self.push_image(repo, img.digest, img)
        return self.push_manifest(repo, tag, build_index(images), OCI_INDEX)
