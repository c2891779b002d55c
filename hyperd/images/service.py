"""ImageService: the image subsystem's public face (pull, list, inspect, rmi, tag, …)."""

from __future__ import annotations

import contextlib
import logging
import os
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from hyperd.images import archive, history, staging
from hyperd.images.auth import CredentialStore
from hyperd.images.errors import (
    ImageError,
    ImageInUse,
    ImageNotFound,
    InvalidReference,
    RootfsBuildError,
)
from hyperd.images.limits import ImageLimits
from hyperd.images.manifest import load_json, parse_platform
from hyperd.images.pull import Progress, Puller, config_summary
from hyperd.images.push import PushClient, Pusher, push_targets
from hyperd.images.reference import Reference, is_image_id, parse_reference
from hyperd.images.registry import RegistryClient, RegistryConfig
from hyperd.images.rootfs import FSTYPES, build_image, scan_layers, tar_mkfs_erofs
from hyperd.images.store import ContentStore, ImageIndex, ImageRecord
from hyperd.images.writebehind import WriteBehind

log = logging.getLogger(__name__)
DEFAULT_ROOT = "/var/lib/hyper"


@dataclass
class ImageServiceConfig:
    """Settings for the image subsystem (a section of the daemon config)."""

    mirrors: list[str] = field(default_factory=list)
    insecure_registries: list[str] = field(default_factory=list)
    platform: str | None = None  # default pull platform, e.g. "linux/amd64"
    max_concurrent_downloads: int = 3
    push_chunk_size: int = 16 << 20  # larger blobs are pushed in PATCH chunks of this size
    rootfs_fstype: str = "erofs"  # measured faster to build and smaller than ext4
    # where a build works; default: beside the disk when it streams the layers into
    # mkfs.erofs, else (unpacking) tmpfs when it has room, else <root>/rootfs
    build_dir: str | None = None
    unpack: bool = False  # unpack layers to a directory for mkfs even where it reads tars
    credentials_path: str | None = None  # default: <root>/config.json
    limits: ImageLimits = field(default_factory=ImageLimits)
    timeout: float = 30.0

    @classmethod
    def from_dict(cls, data: dict | None) -> ImageServiceConfig:
        """Build from a plain mapping, ignoring unknown keys."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


class ImageService:
    """Local images: pull from registries, name, inspect, remove, load/save, root disks."""

    def __init__(
        self,
        root: str | os.PathLike = DEFAULT_ROOT,
        config: ImageServiceConfig | dict | None = None,
        *,
        session_factory: Callable[[], requests.Session] = requests.Session,
        in_use: Callable[[str], bool] | None = None,
    ):
        if not isinstance(config, ImageServiceConfig):
            config = ImageServiceConfig.from_dict(config)
        if config.rootfs_fstype not in FSTYPES:
            raise ValueError(f"rootfs_fstype must be one of {FSTYPES}")
        self.config = config
        self.root = Path(root)
        self.store = ContentStore(self.root)
        self.index = ImageIndex(self.root / "images.db")
        self.rootfs_dir = self.root / "rootfs"
        self.rootfs_dir.mkdir(parents=True, exist_ok=True)
        self.writebehind = WriteBehind(self.rootfs_dir)
        self.writebehind.recover()
        self.staging = staging.Staging(self.root)
        self.credentials = CredentialStore(config.credentials_path or self.root / "config.json")
        self.session_factory = session_factory
        self.in_use = in_use or (lambda _image_id: False)
        # called (in gc's thread) once root disks were deleted: VMs holding one let it go
        self.on_rootfs_removed: Callable[[], None] = lambda: None
        self._gc_lock = threading.Lock()
        self._build_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    # -- registries ------------------------------------------------------------------------

    def client(self, registry: str) -> RegistryClient:
        """A registry client with our settings and stored credentials."""
        rc = RegistryConfig(
            mirrors=list(self.config.mirrors),
            insecure_registries=list(self.config.insecure_registries),
            timeout=self.config.timeout,
        )
        return RegistryClient(
            registry,
            credentials=self.credentials.get(registry),
            config=rc,
            session=self.session_factory(),
        )

    def login(self, registry: str, user: str, password: str) -> None:
        """Verify credentials against ``registry`` and store them."""
        rc = self.client(registry)
        rc.credentials = (user, password)
        rc.ping()
        self.credentials.set(registry, user, password)

    def logout(self, registry: str) -> bool:
        """Forget stored credentials; True if there were any."""
        return self.credentials.remove(registry)

    def pull(
        self, name: str, platform: str | None = None, progress: Progress | None = None
    ) -> ImageRecord:
        """Pull ``name`` (tag or digest) for ``platform`` (default: config, then host)."""
        ref = parse_reference(name)
        want = parse_platform(platform or self.config.platform)
        puller = Puller(
            self.store,
            self.index,
            self.client(ref.registry),
            max_workers=self.config.max_concurrent_downloads,
            progress=progress,
            limits=self.config.limits,
            check=self._unpack,
        )
        try:
            rec = puller.pull(ref, want, explicit_platform=bool(platform or self.config.platform))
        except ImageError:
            self.gc()  # the blobs of a refused image go (others' are leased or referenced)
            raise
        if progress:
            state = "Downloaded newer image" if puller.downloaded else "Image is up to date"
            progress({"status": f"Status: {state} for {ref.familiar()}"})
        return self.index.get(rec.id)

    def push(
        self,
        name: str,
        tag: str | None = None,
        progress: Progress | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> list[str]:
        """Push ``name`` (one tag, or every local tag of the repository); returns the
        manifest digests. ``credentials`` (from the request) win over the stored ones."""
        refs = push_targets(self.index, name, tag)
        emit = progress or (lambda _event: None)
        emit({"status": f"The push refers to repository [{refs[0].familiar_name()}]"})
        registry = refs[0].registry
        client = PushClient(
            registry,
            credentials=credentials or self.credentials.get(registry),
            config=self.client(registry).config,
            session=self.session_factory(),
            repository=refs[0].repository,
            chunk_size=self.config.push_chunk_size,
        )
        pusher = Pusher(self, client, progress, self.config.max_concurrent_downloads)
        return [pusher.push(ref) for ref in refs]

    @contextlib.contextmanager
    def writing(self):
        """Hold off garbage collection while new blobs are written and recorded."""
        with self._gc_lock:
            yield

    # -- lookup ---------------------------------------------------------------------------

    def resolve(self, ref_or_id: str) -> ImageRecord:
        """The local image named by a reference, full ID or unique ID prefix."""
        return self.lookup(ref_or_id)[0]

    def lookup(self, text: str) -> tuple[ImageRecord, str | None]:
        """Resolve like ``resolve``; also return the full name matched (None: found by ID)."""
        image_id, name = None, None
        if is_image_id(text):
            image_id = text if text.startswith("sha256:") else "sha256:" + text
        else:
            image_id, name = self._by_name(text)
            if image_id is None:
                image_id, name = self._by_prefix(text), None
        rec = self.index.get(image_id) if image_id else None
        if rec is None:
            raise ImageNotFound(f"No such image: {text}")
        return rec, name

    def _by_name(self, text: str) -> tuple[str | None, str | None]:
        try:
            ref = parse_reference(text)
        except InvalidReference:
            return None, None
        if not ref.digest:
            return self.index.by_ref(str(ref)), str(ref)
        name = f"{ref.name}@{ref.digest}"
        found = self.index.by_ref(name)
        if found:
            return found, name
        return self.index.by_manifest(ref.name, ref.digest), None

    def _by_prefix(self, text: str) -> str | None:
        prefix = text.removeprefix("sha256:")
        if not prefix or any(c not in string.hexdigits.lower() for c in prefix):
            return None
        ids = self.index.by_prefix(prefix)
        if len(ids) > 1:
            raise ImageInUse(f"ambiguous image ID prefix {text!r} matches {len(ids)} images")
        return ids[0] if ids else None

    def list(self) -> list[ImageRecord]:
        """All local images, newest first."""
        return self.index.all()

    def full_config(self, ref_or_id: str) -> dict:
        """The whole image config JSON (``config``, ``history``, ``rootfs``, …)."""
        rec = self.resolve(ref_or_id)
        return load_json(self.store.read(rec.config_digest), "image config")

    def history(self, ref_or_id: str) -> list[dict]:
        """``docker history``: the image's history entries, newest first."""
        return history.history(self, ref_or_id)

    @staticmethod
    def familiar(full: str) -> str:
        """Docker's short form of a stored name (``busybox:latest``)."""
        return _familiar(full)

    def image_config(self, ref_or_id: str) -> dict:
        """Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts, Volumes, Labels, StopSignal…"""
        rec = self.resolve(ref_or_id)
        return config_summary(load_json(self.store.read(rec.config_digest), "image config"))

    def inspect(self, ref_or_id: str) -> dict:
        """Docker-style ``image inspect`` data."""
        rec = self.resolve(ref_or_id)
        config = load_json(self.store.read(rec.config_digest), "image config")
        return {
            "Id": rec.id,
            "RepoTags": [_familiar(r) for r in rec.tags],
            "RepoDigests": [_familiar(r) for r in rec.digests],
            "Created": rec.created,
            "Size": rec.size,
            "Os": rec.os,
            "Architecture": rec.architecture,
            "Variant": rec.variant,
            "Author": config.get("author", ""),
            "Comment": config.get("comment", ""),
            "Parent": self.index.parent(rec.id) or "",
            "Container": config.get("container", ""),
            "DockerVersion": config.get("docker_version", ""),
            "Config": config_summary(config),
            "RootFS": {"Type": "layers", "Layers": (config.get("rootfs") or {}).get("diff_ids")},
            "Descriptor": {
                "mediaType": rec.media_type,
                "digest": rec.manifest_digest,
                "size": len(self.store.read(rec.manifest_digest)),
            },
        }

    # -- names and removal ------------------------------------------------------------------

    def tag(self, source: str, target: str) -> Reference:
        """Give the image ``source`` the additional name ``target``."""
        rec = self.resolve(source)
        ref = parse_reference(target)
        if ref.digest:
            raise InvalidReference(f"cannot tag with a digest reference: {target!r}")
        self.index.put(rec, [(str(ref), "tag")])
        return ref

    def remove(self, ref_or_id: str, force: bool = False) -> list[dict]:
        """``rmi``: untag a name, deleting the image once no tag is left; then GC blobs.

        Returns Docker-style ``[{"Untagged": …}, {"Deleted": …}]``.
        """
        rec, name = self.lookup(ref_or_id)
        out: list[dict] = []
        if name is not None:
            last = rec.tags == [name] or (not rec.tags and rec.digests == [name])
            if last and self.in_use(rec.id) and not force:
                raise ImageInUse(
                    f"unable to remove repository reference {_familiar(name)!r} (must force) - "
                    "a container is using its referenced image"
                )
            self.index.untag(name)
            out.append({"Untagged": _familiar(name)})
            rec = self.index.get(rec.id)
            if rec.tags:
                return out
        else:
            repos = {parse_reference(t).name for t in rec.tags}
            if len(repos) > 1 and not force:
                raise ImageInUse(
                    f"unable to delete {rec.id[7:19]} (must be forced) - image is referenced "
                    "in multiple repositories"
                )
        if self.in_use(rec.id) and not force:
            raise ImageInUse(f"unable to delete {rec.id[7:19]}: image is in use by a container")
        out += self._delete(rec)
        self.gc()
        return out

    def _delete(self, rec: ImageRecord) -> list[dict]:
        """Delete an image record, and as Docker its unnamed parents (build steps, commits)
        that have no other child and no container."""
        parent = self.index.parent(rec.id)
        self.index.delete(rec.id)
        out = [*({"Untagged": _familiar(n)} for n in rec.tags + rec.digests), {"Deleted": rec.id}]
        return out + self._remove_unnamed_parents(parent)

    def _remove_unnamed_parents(self, image_id: str | None) -> list[dict]:
        out = []
        while image_id is not None:
            rec = self.index.get(image_id)
            if rec is None or rec.tags or rec.digests or self.index.children(image_id):
                break
            if self.in_use(image_id):
                break
            image_id = self.index.parent(rec.id)
            self.index.delete(rec.id)
            out.append({"Deleted": rec.id})
        return out

    def prune(self, match: Callable[[ImageRecord, dict], bool]) -> tuple[list[dict], int]:
        """Delete the images no container uses that ``match(record, inspect data)`` selects;
        (Docker's ImagesDeleted, bytes freed)."""
        deleted: list[dict] = []
        for rec in self.list():
            if self.index.get(rec.id) is None:  # went with a child deleted before it
                continue
            if not self.in_use(rec.id) and match(rec, self.inspect(rec.id)):
                deleted += self._delete(rec)
        return deleted, self.gc()

    def gc(self) -> int:
        """Delete blobs and root disks no image needs; return bytes freed."""
        with self._gc_lock:
            keep = self.index.referenced_blobs() | self.store.leased()
            freed = 0
            for digest in self.store.digests() - keep:
                with contextlib.suppress(FileNotFoundError):
                    freed += self.store.path(digest).stat().st_size
                self.store.delete(digest)
            ids = {r.id.removeprefix("sha256:") for r in self.index.all()}
            removed = False
            for p in self.rootfs_dir.iterdir():
                if p.is_file() and not p.name.startswith(".") and p.name.split(".")[0] not in ids:
                    freed += p.stat().st_size
                    p.unlink()
                    removed = True
        if removed:
            self.on_rootfs_removed()
        return freed

    # -- archives and root disks -------------------------------------------------------------

    def load(self, path: str | os.PathLike) -> list[str]:
        """Import a ``docker save`` tarball or OCI layout/archive; return loaded names/IDs."""
        try:
            return archive.load(self, Path(path))
        except ImageError:
            self.gc()
            raise

    def save(self, refs: list[str], path: str | os.PathLike) -> None:
        """Write images to a docker-save compatible tarball (with OCI index.json)."""
        archive.save(self, refs, Path(path))

    def rootfs_path(self, ref_or_id: str) -> Path:
        """The image's read-only root filesystem image, built on first use."""
        rec = self.resolve(ref_or_id)
        out = self._rootfs_file(rec.id)
        with self._build_lock(rec.id):
            if not out.exists():
                with self.store.lease(rec.blobs()):
                    config = load_json(self.store.read(rec.config_digest), "image config")
                    diff_ids = (config.get("rootfs") or {}).get("diff_ids")
                    layers = [self.store.path(d.digest) for d in rec.layers]
                    self._build_rootfs(layers, out, diff_ids, ref_or_id)
        return out

    def _unpack(
        self, image_id: str, layers: list[Path], diff_ids: list[str], name: str, done
    ) -> None:
        """A pull's check of its layers: building the root disk reads each layer once, and
        checks all that a scan does (names, limits, diff_ids), so a pull does that, as
        Docker's unpacks, and the first run finds the disk built. A disk already built
        (the same config pulled again) leaves the layers to a scan; so does an mkfs that
        fails (the run will say why), since it may have stopped reading early. ``done(layer)`` is
        called as each layer is unpacked (Docker's "Pull complete")."""
        out = self._rootfs_file(image_id)
        with self._build_lock(image_id):
            if out.exists():
                scan_layers(layers, diff_ids, self.config.limits, name)
                return
            try:
                self._build_rootfs(layers, out, diff_ids, name, done)
            except RootfsBuildError as exc:
                log.warning("%s: root disk not built at pull: %s", name, exc)
                scan_layers(layers, diff_ids, self.config.limits, name)  # mkfs may stop early

    def _rootfs_file(self, image_id: str) -> Path:
        hexid = image_id.removeprefix("sha256:")
        return self.rootfs_dir / f"{hexid}.{self.config.rootfs_fstype}"

    def _build_lock(self, image_id: str) -> threading.Lock:
        with self._lock:
            return self._build_locks.setdefault(image_id, threading.Lock())

    def _build_rootfs(self, layers: list[Path], out: Path, diff_ids, image: str, done=None) -> None:
        """Build ``out`` where configured; else stream the layers into mkfs.erofs where it
        can, else unpack them on tmpfs when it has room (hyperd/images/staging.py), else,
        or when tmpfs gives out, on disk."""
        fstype, limits, unpack = self.config.rootfs_fstype, self.config.limits, self.config.unpack
        publish = self.writebehind.publish
        if self.config.build_dir:
            workdir = Path(self.config.build_dir)
            build_image(
                layers, out, fstype, workdir, diff_ids, limits, image=image, done=done,
                unpack=unpack, publish=publish,
            )  # fmt: skip
            return
        if not unpack and fstype == "erofs" and tar_mkfs_erofs():
            build_image(
                layers, out, fstype, self.rootfs_dir, diff_ids, limits, image=image, done=done,
                publish=publish,
            )  # fmt: skip
            return
        with self.staging.reserve(layers) as tar_bytes:
            if tar_bytes is not None:
                try:
                    build_image(
                        layers, out, fstype, self.staging.workdir(), diff_ids,
                        staging.capped(limits, tar_bytes), strict_xattrs=True, image=image,
                        done=done, unpack=True, publish=publish,
                    )  # fmt: skip
                    return
                except (OSError, ImageError) as exc:
                    if not self.staging.gave_out(exc):
                        raise
                    log.info("root disk %s: staging on tmpfs gave out (%s); on disk", out, exc)
        build_image(
            layers, out, fstype, self.rootfs_dir, diff_ids, limits, image=image, done=done,
            unpack=True, publish=publish,
        )  # fmt: skip

    @property
    def rootfs_fstype(self) -> str:
        """Filesystem type of the root disks we build (``erofs`` or ``ext4``)."""
        return self.config.rootfs_fstype


def _familiar(full: str) -> str:
    if "@" in full:
        name, digest = full.split("@", 1)
        return parse_reference(name, default_tag=False).familiar_name() + "@" + digest
    return parse_reference(full).familiar()
