"""Pulling an image: manifest (and platform selection), config, layers in parallel."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path

from hyperd.images.errors import ImageNotFound, UnsupportedImage
from hyperd.images.limits import ImageLimits
from hyperd.images.manifest import (
    DOCKER_LAYER_FOREIGN,
    INDEX_TYPES,
    Descriptor,
    Platform,
    load_json,
    parse_manifest,
    select_platform,
)
from hyperd.images.reference import Reference
from hyperd.images.registry import RegistryClient
from hyperd.images.rootfs import scan_layers
from hyperd.images.store import ContentStore, ImageIndex, ImageRecord

log = logging.getLogger(__name__)

Progress = Callable[[dict], None]
#: checks a pulled image's layers before it is listed: (image ID, layer blob paths,
#: diff_ids, name for errors, called with each layer unpacked); raises an ImageError to
#: refuse it
Check = Callable[[str, list[Path], list[str], str, Callable[[Path], None]], None]


def short_id(digest: str) -> str:
    """The 12-hex short form Docker prints for layers and images."""
    return digest.split(":", 1)[-1][:12]


def record_from_config(
    config_digest: str, config: dict, manifest_digest: str, media_type: str, layers
) -> ImageRecord:
    """Build an ImageRecord from a parsed config and manifest facts."""
    return ImageRecord(
        id=config_digest,
        manifest_digest=manifest_digest,
        media_type=media_type,
        config_digest=config_digest,
        layers=list(layers),
        size=sum(d.size for d in layers),
        created=str(config.get("created") or ""),
        os=str(config.get("os") or "linux"),
        architecture=str(config.get("architecture") or "amd64"),
        variant=config.get("variant"),
    )


def check_config(config: dict, layers, where: str) -> None:
    """The config must be an image config with one diff_id per layer."""
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise UnsupportedImage(f"{where}: config has no rootfs.diff_ids list")
    if len(diff_ids) != len(layers):
        raise UnsupportedImage(
            f"{where}: config lists {len(diff_ids or [])} diff_ids for {len(layers)} layers"
        )


def run_all(fn: Callable, items, workers: int) -> None:
    """``fn(item)`` for every item on ``workers`` threads; the first failure cancels what
    has not started and is raised."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(fn, item) for item in items]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        for f in futures:
            if f.done() and not f.cancelled() and f.exception():
                raise f.exception()


class Arrivals(Sequence[Path]):
    """The layer blobs of a pull, each handed out once its download has finished, so the
    root disk is built from the first layers while later ones still download; a failed
    download raises its error to whoever asks for that layer."""

    def __init__(self, paths: list[Path], fetches: list[Future]):
        self._paths, self._fetches = paths, fetches

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        self._fetches[i].result()
        return self._paths[i]


class Puller:
    """One pull of one reference into a content store and image index."""

    def __init__(
        self,
        store: ContentStore,
        index: ImageIndex,
        client: RegistryClient,
        *,
        max_workers: int = 3,
        progress: Progress | None = None,
        limits: ImageLimits | None = None,
        check: Check | None = None,
    ):
        self.store, self.index, self.client = store, index, client
        self.limits = limits
        self.check = check or self._scan
        self.max_workers = max_workers
        self._emit = progress or (lambda _event: None)
        self.downloaded = 0  # blobs fetched by this pull

    def pull(self, ref: Reference, want: Platform, explicit_platform: bool) -> ImageRecord:
        """Fetch ``ref`` for platform ``want`` and record it; returns the image record."""
        repo = ref.repository
        self._emit({"status": f"Pulling from {ref.familiar_name()}", "id": ref.tag or ref.digest})
        raw, media_type, digest = self.client.get_manifest(repo, ref.digest or ref.tag)
        index_raw = index_digest = None
        if media_type in INDEX_TYPES:
            index_raw, index_digest = raw, digest
            desc = select_platform(raw, want)
            raw, media_type, digest = self.client.get_manifest(repo, desc.digest)
            if media_type in INDEX_TYPES:
                raise UnsupportedImage(f"{ref}: nested image indexes are not supported")
        manifest = parse_manifest(raw)
        for layer in manifest.layers:
            if layer.media_type == DOCKER_LAYER_FOREIGN or layer.urls:
                raise UnsupportedImage(f"{ref}: foreign layers ({layer.digest}) are not supported")
        blobs = [manifest.config, *manifest.layers]
        with self.store.lease([d.digest for d in blobs] + [digest, index_digest or digest]):
            self._fetch(repo, manifest.config)
            config = load_json(self.store.read(manifest.config.digest), "image config")
            self._check_platform(ref, config, want, explicit_platform and index_raw is None)
            check_config(config, manifest.layers, str(ref))
            self._fetch_and_check(repo, manifest, config["rootfs"]["diff_ids"], ref.familiar())
            self.store.write(raw, digest)
            if index_raw is not None:
                self.store.write(index_raw, index_digest)
            rec = record_from_config(
                manifest.config.digest, config, digest, media_type, manifest.layers
            )
            rec.index_digest = index_digest
            rec.added = time.time()
            refs = [(f"{ref.name}@{index_digest or digest}", "digest")]
            if ref.tag and not ref.digest:
                refs.append((str(ref), "tag"))
            self.index.put(rec, refs)
        self._emit({"status": f"Digest: {index_digest or digest}"})
        return rec

    def _fetch_and_check(self, repo: str, manifest, diff_ids: list[str], name: str) -> None:
        """Download the layers (``max_workers`` at once) while the check reads them, in
        order, as each arrives; the first failure of either stops the rest."""
        with ThreadPoolExecutor(max_workers=max(1, self.max_workers)) as pool:
            fetches = [pool.submit(self._fetch, repo, d) for d in manifest.layers]
            paths = [self.store.path(d.digest) for d in manifest.layers]
            try:
                arrivals = Arrivals(paths, fetches)
                self.check(manifest.config.digest, arrivals, diff_ids, name, self._unpacked)
                for f in fetches:
                    f.result()  # a check that skipped a layer still needs it stored
            except BaseException:
                for f in fetches:
                    f.cancel()
                raise

    def _scan(self, _image_id: str, layers: list[Path], diff_ids: list[str], name: str, _done):
        scan_layers(layers, diff_ids, self.limits, name)

    def _unpacked(self, layer: Path) -> None:
        self._emit({"status": "Pull complete", "id": layer.name[:12]})

    def _check_platform(self, ref, config: dict, want: Platform, strict: bool) -> None:
        have = {k: config.get(k) for k in ("os", "architecture", "variant")}
        if strict and not want.matches(have):
            raise ImageNotFound(
                f"image {ref.familiar()} was found but does not match the requested platform "
                f"{want} (it is {have['os']}/{have['architecture']})"
            )

    def _fetch(self, repo: str, desc: Descriptor) -> None:
        sid = short_id(desc.digest)
        with self.store.lock_digest(desc.digest):
            if self.store.has(desc.digest, desc.size):
                self._emit({"status": "Already exists", "id": sid})
                return

            def progress(n: int) -> None:
                detail = {"current": n, "total": desc.size}
                self._emit({"status": "Downloading", "id": sid, "progressDetail": detail})

            with self.store.ingest(desc, verified=True) as f:
                self.client.fetch_blob(repo, desc, f, progress)
            self.downloaded += 1
            self._emit({"status": "Download complete", "id": sid})


def config_summary(config: dict) -> dict:
    """The runtime-relevant part of an image config, with Docker's key names."""
    c = config.get("config") or {}
    keys = (
        "Entrypoint", "Cmd", "Env", "WorkingDir", "User", "ExposedPorts", "Volumes",
        "Labels", "StopSignal", "Healthcheck", "Shell", "OnBuild",
    )  # fmt: skip
    return {k: c.get(k) for k in keys}


def dumps(data: dict) -> bytes:
    """Compact JSON for configs and manifests we write ourselves."""
    return json.dumps(data, separators=(",", ":"), sort_keys=False).encode()
