"""``docker save`` / ``docker load`` archives and OCI image layouts.

Loads: docker-save tarballs (manifest.json + repositories, legacy or docker 25+ layout),
OCI layouts (a directory with oci-layout + index.json + blobs/) and OCI archives (the same,
tarred). Saves: a tarball that is both a docker-save archive and an OCI layout, as docker 25+
writes it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from hyperd.images.errors import DigestMismatch, ImageError, InvalidReference, UnsupportedImage
from hyperd.images.manifest import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_LAYER_ZSTD,
    Descriptor,
    load_json,
    media_type_of,
    parse_manifest,
    parse_platform,
    select_platform,
)
from hyperd.images.pull import check_config, dumps, record_from_config
from hyperd.images.reference import Reference, parse_reference
from hyperd.images.rootfs import scan_layers

if TYPE_CHECKING:
    from hyperd.images.service import ImageService

DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
MAX_JSON = 16 << 20


class _Source:
    """Read-only access to the files of an archive: a directory or a (compressed) tarball."""

    def __init__(self, path: Path):
        self.path = path
        self.tar = None if path.is_dir() else self._open_tar(path)
        if self.tar is not None:
            self.members = {
                os.path.normpath(m.name).lstrip("/"): m
                for m in self.tar.getmembers()
                if m.isreg() or m.issym()
            }

    def _resolve(self, name: str) -> str:
        """Follow in-archive symlinks (old docker save links duplicate layer.tar files)."""
        for _ in range(10):
            m = self.members.get(name)
            if m is None or not m.issym():
                return name
            name = os.path.normpath(os.path.join(os.path.dirname(name), m.linkname)).lstrip("/")
            if name.startswith(".."):
                break
        raise UnsupportedImage(f"archive {self.path}: bad symlink chain at {name!r}")

    @staticmethod
    def _open_tar(path: Path) -> tarfile.TarFile:
        try:
            return tarfile.open(path, "r:*")
        except (tarfile.TarError, OSError) as e:
            raise UnsupportedImage(f"{path} is not an image archive: {e}") from None

    def exists(self, name: str) -> bool:
        name = os.path.normpath(name).lstrip("/")
        if self.tar is None:
            return (self.path / name).is_file() and _inside(self.path, self.path / name)
        m = self.members.get(self._resolve(name))
        return m is not None and m.isreg()

    def open(self, name: str) -> BinaryIO:
        norm = os.path.normpath(name).lstrip("/")
        if not self.exists(norm):
            raise ImageError(f"archive {self.path} has no file {name!r}")
        if self.tar is None:
            return open(self.path / norm, "rb")  # noqa: SIM115 - caller closes
        return self.tar.extractfile(self.members[self._resolve(norm)])

    def read_json(self, name: str) -> object:
        with self.open(name) as f:
            raw = f.read(MAX_JSON + 1)
        if len(raw) > MAX_JSON:
            raise UnsupportedImage(f"{name} in {self.path} is too large")
        try:
            return json.loads(raw)
        except ValueError as e:
            raise UnsupportedImage(f"{name} in {self.path} is not valid JSON: {e}") from None

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()


def _inside(root: Path, p: Path) -> bool:
    return os.path.realpath(p).startswith(os.path.realpath(root) + os.sep)


def _blob_name(digest: str) -> str:
    algo, hexpart = digest.split(":", 1)
    return f"blobs/{algo}/{hexpart}"


def _layer_media_type(head: bytes) -> str:
    if head[:2] == b"\x1f\x8b":
        return DOCKER_LAYER_GZIP
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return OCI_LAYER_ZSTD
    return DOCKER_LAYER_TAR


class _Loader:
    def __init__(self, service: ImageService, src: _Source):
        self.svc, self.src = service, src
        self.store = service.store

    def import_blob(self, name: str, desc: Descriptor | None = None) -> Descriptor:
        """Copy ``name`` into the store, verified against ``desc`` when given."""
        if desc is not None and self.store.has(desc.digest, desc.size):
            return desc
        with self.src.open(name) as src, self.store.ingest(desc) as out:
            head = src.read(4)
            out.write(head)
            while chunk := src.read(1 << 20):
                out.write(chunk)
            size = out.tell()
        if desc is not None:
            return desc
        return Descriptor(_layer_media_type(head), out.digest, size)

    def import_oci_manifest(self, desc: Descriptor) -> tuple[Descriptor, bytes, dict]:
        """Import manifest ``desc`` and its config and layers from blobs/ in the archive."""
        self.import_blob(_blob_name(desc.digest), desc)
        raw = self.store.read(desc.digest)
        manifest = parse_manifest(raw)
        self.import_blob(_blob_name(manifest.config.digest), manifest.config)
        config = load_json(self.store.read(manifest.config.digest), "image config")
        check_config(config, manifest.layers, str(self.src.path))
        for layer in manifest.layers:
            self.import_blob(_blob_name(layer.digest), layer)
        return desc, raw, config

    def record(self, manifest_desc: Descriptor, raw: bytes, config: dict, names: list[Reference]):
        manifest = parse_manifest(raw)
        rec = record_from_config(
            manifest.config.digest, config, manifest_desc.digest, manifest.media_type,
            manifest.layers,
        )  # fmt: skip
        rec.added = time.time()
        layer_paths = [self.store.path(d.digest) for d in manifest.layers]
        name = str(names[0]) if names else str(self.src.path)
        scan_layers(layer_paths, config["rootfs"]["diff_ids"], self.svc.config.limits, name)
        self.svc.index.put(rec, [(str(n), "tag") for n in names])
        return rec


def _names_from_annotations(annotations: dict | None) -> list[Reference]:
    ann = annotations or {}
    for value in (ann.get(NAME_ANNOTATION), ann.get(REF_ANNOTATION)):
        if not value or not any(c in value for c in "/:"):
            continue  # a bare tag (skopeo's ref.name) cannot name a repository
        try:
            return [parse_reference(value)]
        except InvalidReference:
            continue
    return []


def _load_oci(loader: _Loader) -> list[str]:
    index = loader.src.read_json("index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise UnsupportedImage("index.json has no manifests list")
    want = parse_platform(loader.svc.config.platform)
    loaded = []
    for i, entry in enumerate(index["manifests"]):
        desc = Descriptor.from_dict(entry, f"index.json entry {i}")
        if desc.media_type in INDEX_TYPES:
            loader.import_blob(_blob_name(desc.digest), desc)
            desc = select_platform(loader.store.read(desc.digest), want)
        mdesc, raw, config = loader.import_oci_manifest(desc)
        names = _names_from_annotations(entry.get("annotations"))
        rec = loader.record(mdesc, raw, config, names)
        loaded += [str(n) for n in names] or [rec.id]
    return loaded


def _config_digest_from_name(name: str) -> str | None:
    base = os.path.basename(name).removesuffix(".json")
    if len(base) == 64 and all(c in "0123456789abcdef" for c in base):
        return "sha256:" + base
    return None


def _oci_manifests_by_config(loader: _Loader) -> dict[str, Descriptor]:
    """For docker 25+ style archives: config digest -> OCI manifest descriptor in index.json."""
    if not loader.src.exists("index.json"):
        return {}
    index = loader.src.read_json("index.json")
    out = {}
    for i, entry in enumerate((index or {}).get("manifests") or []):
        desc = Descriptor.from_dict(entry, f"index.json entry {i}")
        name = _blob_name(desc.digest)
        if desc.media_type in INDEX_TYPES or not loader.src.exists(name):
            continue
        with loader.src.open(name) as fh:
            raw = fh.read(desc.size + 1)
        if len(raw) == desc.size and hashlib.sha256(raw).hexdigest() == desc.digest[7:]:
            out[parse_manifest(raw).config.digest] = desc
    return out


def _load_docker(loader: _Loader) -> list[str]:
    entries = loader.src.read_json("manifest.json")
    if not isinstance(entries, list):
        raise UnsupportedImage("manifest.json is not a list")
    by_config = _oci_manifests_by_config(loader)
    loaded = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("Layers"), list):
            raise UnsupportedImage(f"manifest.json entry {i} has no Layers")
        names = [parse_reference(t) for t in entry.get("RepoTags") or []]
        config_name = str(entry.get("Config") or "")
        oci = by_config.get(_config_digest_from_name(config_name) or "")
        if oci is not None:
            rec = loader.record(*loader.import_oci_manifest(oci), names)
            loaded += [str(n) for n in names] or [rec.id]
            continue
        config_desc = loader.import_blob(config_name)
        want = _config_digest_from_name(config_name)
        if want and want != config_desc.digest:
            raise DigestMismatch(f"{config_name}: content has digest {config_desc.digest}")
        config = load_json(loader.store.read(config_desc.digest), "image config")
        layers = [loader.import_blob(str(name)) for name in entry["Layers"]]
        check_config(config, layers, f"manifest.json entry {i}")
        _verify_diff_ids(config, layers)
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": Descriptor(DOCKER_CONFIG, config_desc.digest, config_desc.size).to_dict(),
            "layers": [d.to_dict() for d in layers],
        }
        raw = dumps(manifest)
        mdesc = Descriptor(DOCKER_MANIFEST, loader.store.write(raw), len(raw))
        rec = loader.record(mdesc, raw, config, names)
        loaded += [str(n) for n in names] or [rec.id]
    return loaded


def _verify_diff_ids(config: dict, layers: list[Descriptor]) -> None:
    diff_ids = config["rootfs"]["diff_ids"]
    for i, (layer, diff_id) in enumerate(zip(layers, diff_ids, strict=True)):
        if layer.media_type == DOCKER_LAYER_TAR and layer.digest != diff_id:
            raise DigestMismatch(f"layer {i}: content {layer.digest} does not match {diff_id}")


def load(service: ImageService, path: Path) -> list[str]:
    """Import every image in the archive at ``path``; return the names (or IDs) loaded."""
    if not path.exists():
        raise ImageError(f"archive {path} does not exist")
    src = _Source(path)
    try:
        loader = _Loader(service, src)
        if src.exists("manifest.json"):
            return _load_docker(loader)
        if src.exists("index.json"):
            return _load_oci(loader)
        raise UnsupportedImage(f"{path}: neither manifest.json nor index.json found")
    finally:
        src.close()


# -- save ------------------------------------------------------------------------------------


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def _add_blob(tar: tarfile.TarFile, service: ImageService, digest: str, done: set) -> None:
    if digest in done:
        return
    done.add(digest)
    path = service.store.path(digest)
    info = tarfile.TarInfo(_blob_name(digest))
    info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
    with open(path, "rb") as f:
        tar.addfile(info, f)


def save(service: ImageService, refs: list[str], path: Path) -> None:
    """Write the images named by ``refs`` to ``path`` (docker-save + OCI layout)."""
    if not refs:
        raise ImageError("nothing to save: no image names given")
    plan: dict[str, tuple] = {}
    for text in refs:
        rec, name = service.lookup(text)
        names = plan.setdefault(rec.id, (rec, []))[1]
        if name and "@" not in name and name not in names:
            names.append(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with (
            os.fdopen(fd, "wb") as f,
            tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            _write_save(tar, service, list(plan.values()))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_save(tar: tarfile.TarFile, service: ImageService, images: list[tuple]) -> None:
    done: set[str] = set()
    manifest_json, index_entries, repositories = [], [], {}
    for rec, names in images:
        for digest in (rec.config_digest, *(d.digest for d in rec.layers), rec.manifest_digest):
            _add_blob(tar, service, digest, done)
        refs = [parse_reference(n) for n in names]
        manifest_json.append(
            {
                "Config": _blob_name(rec.config_digest),
                "RepoTags": [r.familiar() for r in refs],
                "Layers": [_blob_name(d.digest) for d in rec.layers],
            }
        )
        raw = service.store.read(rec.manifest_digest)
        base = {"mediaType": media_type_of(raw), "digest": rec.manifest_digest, "size": len(raw)}
        for r in refs:
            ann = {NAME_ANNOTATION: str(r), REF_ANNOTATION: r.tag}
            index_entries.append({**base, "annotations": ann})
            top = rec.layers[-1].digest.split(":", 1)[1] if rec.layers else ""
            repositories.setdefault(r.familiar_name(), {})[r.tag] = top
        if not refs:
            index_entries.append(base)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_entries}
    _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    _add_bytes(tar, "index.json", dumps(index))
    _add_bytes(tar, "manifest.json", dumps(manifest_json))
    if repositories:
        _add_bytes(tar, "repositories", dumps(repositories))
