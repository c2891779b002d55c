"""Manifest media types, descriptors and platform selection (Docker schema 2 and OCI)."""

from __future__ import annotations

import json
import platform as _platform
from dataclasses import dataclass

from hyperd.images.errors import ImageNotFound, UnsupportedImage
from hyperd.images.reference import validate_digest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
LAYER_TYPES = (
    DOCKER_LAYER_GZIP,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
)
MAX_MANIFEST_BYTES = 4 << 20

_ARCH_ALIASES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


@dataclass(frozen=True)
class Platform:
    """A target platform: ``linux/amd64``, ``linux/arm64/v8``, ``linux/arm/v7``."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    def matches(self, other: dict) -> bool:
        """True if an index entry's ``platform`` object is for this platform."""
        if other.get("os") != self.os or other.get("architecture") != self.architecture:
            return False
        theirs = other.get("variant")
        if self.variant is None or theirs is None:
            return True
        return theirs == self.variant


def parse_platform(text: str | None) -> Platform:
    """Parse ``os/arch[/variant]``; None means the host's linux platform."""
    if not text:
        machine = _platform.machine().lower()
        return Platform("linux", _ARCH_ALIASES.get(machine, machine))
    parts = text.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UnsupportedImage(f"invalid platform {text!r}: expected os/arch[/variant]")
    arch = _ARCH_ALIASES.get(parts[1], parts[1])
    variant = parts[2] if len(parts) == 3 else None
    if arch == "arm64" and variant == "v8":
        variant = None  # arm64 is v8 unless stated otherwise; match any
    return Platform(parts[0], arch, variant)


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor: media type, digest, size (and optional URLs)."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict, what: str) -> Descriptor:
        """Validate a descriptor object from a manifest; ``what`` names it in errors."""
        if not isinstance(data, dict):
            raise UnsupportedImage(f"{what}: descriptor is not an object")
        digest, size = data.get("digest"), data.get("size")
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            raise UnsupportedImage(f"{what}: unsupported or missing digest {digest!r}")
        validate_digest(digest)
        if not isinstance(size, int) or size < 0:
            raise UnsupportedImage(f"{what}: invalid size {size!r}")
        media_type, urls = data.get("mediaType", ""), data.get("urls") or []
        if not isinstance(media_type, str):
            raise UnsupportedImage(f"{what}: mediaType {media_type!r:.80} is not a string")
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise UnsupportedImage(f"{what}: urls is not a list of strings")
        return cls(media_type, digest, size, tuple(urls))

    def to_dict(self) -> dict:
        """The JSON form used in manifests."""
        out = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        return out


@dataclass(frozen=True)
class Manifest:
    """A single-platform image manifest."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def load_json(raw: bytes, what: str) -> dict:
    """Decode a JSON object, raising UnsupportedImage naming ``what`` on failure."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise UnsupportedImage(f"{what} is not valid JSON: {e}") from None
    except RecursionError:
        raise UnsupportedImage(f"{what} is nested too deeply to be JSON we read") from None
    if not isinstance(data, dict):
        raise UnsupportedImage(f"{what} is not a JSON object")
    return data


def media_type_of(raw: bytes, header_type: str | None = None) -> str:
    """The manifest's media type: its ``mediaType`` field, else the header, else guessed."""
    data = load_json(raw, "manifest")
    mt = data.get("mediaType") or (header_type or "").split(";")[0].strip()
    if not isinstance(mt, str):
        raise UnsupportedImage(f"manifest mediaType {mt!r:.80} is not a string")
    if mt in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED) or data.get("schemaVersion") == 1:
        raise UnsupportedImage("schema 1 manifests are not supported; push the image again")
    if mt in (*MANIFEST_TYPES, *INDEX_TYPES):
        return mt
    if "manifests" in data:
        return OCI_INDEX
    if "config" in data and "layers" in data:
        return OCI_MANIFEST
    raise UnsupportedImage(f"unsupported manifest media type {mt!r}")


def parse_manifest(raw: bytes) -> Manifest:
    """Parse and validate an image manifest (schema 2 or OCI)."""
    mt = media_type_of(raw)
    if mt not in MANIFEST_TYPES:
        raise UnsupportedImage(f"expected an image manifest, got {mt}")
    data = load_json(raw, "manifest")
    config = Descriptor.from_dict(data.get("config"), "manifest config")
    layers = data.get("layers")
    if not isinstance(layers, list):
        raise UnsupportedImage("manifest has no layers list")
    descs = tuple(Descriptor.from_dict(x, f"layer {i}") for i, x in enumerate(layers))
    for d in descs:
        if d.media_type not in LAYER_TYPES and d.media_type != DOCKER_LAYER_FOREIGN:
            raise UnsupportedImage(f"unsupported layer media type {d.media_type!r}")
    return Manifest(mt, config, descs)


def select_platform(raw_index: bytes, want: Platform) -> Descriptor:
    """Pick the manifest for ``want`` from a manifest list / OCI index."""
    data = load_json(raw_index, "image index")
    entries = data.get("manifests")
    if not isinstance(entries, list):
        raise UnsupportedImage("image index has no manifests list")
    seen = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise UnsupportedImage(f"image index entry {i} is not an object")
        plat = entry.get("platform")
        plat = plat if isinstance(plat, dict) else {}
        fields = (plat.get("os"), plat.get("architecture"), plat.get("variant"))
        seen.append("/".join(x for x in fields if x))
        if want.matches(plat):
            desc = Descriptor.from_dict(entry, f"index entry {i}")
            if desc.media_type in INDEX_TYPES:
                raise UnsupportedImage("nested image indexes are not supported")
            return desc
    raise ImageNotFound(
        f"no matching manifest for {want} in the manifest list entries (has: {', '.join(seen)})"
    )
