"""Pushing an image: blobs (HEAD first, cross-repository mount, monolithic or chunked
upload), then the manifest, with Docker's JSON progress messages.

A push that stops half-way leaves the blobs it finished in the registry; the next push
finds them with HEAD and uploads only the rest. The manifest goes up byte for byte as it is
stored, so the registry must name it by the digest we have; another digest is an error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin

from hyperd.images.errors import AuthError, DigestMismatch, ImageNotFound, RegistryError
from hyperd.images.manifest import Descriptor, media_type_of
from hyperd.images.pull import run_all, short_id
from hyperd.images.reference import DEFAULT_REGISTRY, Reference, parse_reference
from hyperd.images.registry import RegistryClient, _error_text
from hyperd.images.store import ImageIndex, ImageRecord

Progress = Callable[[dict], None]
CHUNK_SIZE = 16 << 20  # blobs larger than this go up in PATCH chunks of this size
READ_SIZE = 1 << 20


class _Body:
    """A part of a file as a request body, reporting how much of the blob was sent."""

    def __init__(self, f: BinaryIO, start: int, length: int, sent: Callable[[int], None]):
        self.f, self.left, self.sent = f, length, sent
        self.length = length
        self.pos = start
        f.seek(start)

    def __len__(self) -> int:
        return self.length

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(min(want, READ_SIZE))
        self.left -= len(data)
        self.pos += len(data)
        self.sent(self.pos)
        return data


class PushClient(RegistryClient):
    """The push side of the registry API for one repository."""

    def __init__(self, *args, repository: str, chunk_size: int = CHUNK_SIZE, **kw):
        super().__init__(*args, **kw)
        self.repository = repository
        self.chunk_size = chunk_size
        self.base = self.endpoints[-1]
        self.scope = f"repository:{repository}:push,pull"

    def _check(self, resp, what: str, ok: tuple[int, ...]) -> None:
        if resp.status_code in ok:
            return
        if resp.status_code in (401, 403):
            raise AuthError(
                f"push access denied to {self.registry}/{self.repository}: "
                f"{_error_text(resp) or 'authentication required'}"
            )
        raise RegistryError(
            f"{self.registry}: {what}: HTTP {resp.status_code}: {_error_text(resp)}"
        )

    def has_blob(self, digest: str) -> bool:
        """HEAD the blob: True when the repository has it already."""
        url = f"{self.base}/v2/{self.repository}/blobs/{digest}"
        resp = self.request("HEAD", url, self.scope)
        resp.close()
        if resp.status_code == 404:
            return False
        self._check(resp, f"HEAD blob {digest}", (200,))
        return True

    def start_upload(self, digest: str, mount_from: str | None) -> str | None:
        """POST an upload (or a mount from another repository): its location, or None when
        the registry mounted the blob."""
        url = f"{self.base}/v2/{self.repository}/blobs/uploads/"
        params, scope = {}, self.scope
        if mount_from:
            params = {"mount": digest, "from": mount_from}
            scope = f"{self.scope} repository:{mount_from}:pull"
        resp = self.request("POST", url, scope, params=params)
        resp.close()
        if mount_from and resp.status_code == 201:
            return None
        self._check(resp, "start blob upload", (202,))
        return self._location(resp)

    def _location(self, resp) -> str:
        loc = resp.headers.get("Location")
        if not loc:
            raise RegistryError(f"{self.registry}: upload answer without a Location")
        return urljoin(self.base + "/", loc)

    def upload(self, location: str, path: Path, desc: Descriptor, progress) -> None:
        """Send the blob at ``path``: one PUT, or PATCH chunks then a PUT."""
        with open(path, "rb") as f:
            if desc.size <= self.chunk_size:
                body = _Body(f, 0, desc.size, progress)
                self._put(location, desc.digest, body)
                return
            pos = 0
            while pos < desc.size:
                n = min(self.chunk_size, desc.size - pos)
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{pos}-{pos + n - 1}",
                }
                resp = self.request(
                    "PATCH", location, self.scope, data=_Body(f, pos, n, progress),
                    headers=headers,
                )  # fmt: skip
                resp.close()
                self._check(resp, f"upload of {desc.digest}", (202, 204))
                location = self._location(resp)
                pos += n
            self._put(location, desc.digest, b"")

    def _put(self, location: str, digest: str, body) -> None:
        sep = "&" if "?" in location else "?"
        headers = {"Content-Type": "application/octet-stream"}
        resp = self.request(
            "PUT", f"{location}{sep}digest={digest}", self.scope, data=body, headers=headers
        )
        resp.close()
        self._check(resp, f"upload of {digest}", (201, 204))
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise DigestMismatch(f"{self.registry} stored blob {digest} as {got}")

    def put_manifest(self, tag: str, raw: bytes, media_type: str) -> str:
        """PUT the manifest under ``tag``; the digest the registry gives it."""
        url = f"{self.base}/v2/{self.repository}/manifests/{tag}"
        resp = self.request("PUT", url, self.scope, data=raw, headers={"Content-Type": media_type})
        resp.close()
        self._check(resp, f"manifest {tag}", (200, 201, 202))
        return resp.headers.get("Docker-Content-Digest") or ""


def push_targets(index: ImageIndex, name: str, tag: str | None) -> list[Reference]:
    """The tagged references a push of ``name`` (and ``tag``) sends."""
    ref = parse_reference(name, default_tag=False)
    if ref.digest:
        raise RegistryError(f"cannot push a digest reference: {name}")
    if tag:
        ref = ref.with_tag(tag)
    if ref.registry == DEFAULT_REGISTRY:
        raise RegistryError(
            f"{name} names no registry: tag the image HOST[:PORT]/{ref.familiar_name()} "
            "and push that (Docker Hub is out of reach for hyperd)"
        )
    if ref.tag:
        if index.by_ref(str(ref)) is None:
            raise ImageNotFound(f"An image does not exist locally with the tag: {ref.familiar()}")
        return [ref]
    tags = sorted({r for rec in index.all() for r in rec.tags if r.startswith(ref.name + ":")})
    if not tags:
        raise ImageNotFound(f"An image does not exist locally with the tag: {ref.familiar()}")
    return [parse_reference(t) for t in tags]


class Pusher:
    """One push of one repository's tags."""

    def __init__(self, svc, client: PushClient, progress: Progress | None, workers: int = 3):
        self.svc, self.client = svc, client
        self.emit = progress or (lambda _event: None)
        self.workers = max(1, workers)
        self.uploaded = 0  # blobs sent by this push (not found, not mounted)
        self._lock = threading.Lock()

    def push(self, ref: Reference) -> str:
        """Push one tag; returns the manifest digest."""
        rec = self.svc.index.get(self.svc.index.by_ref(str(ref)))
        blobs = [*rec.layers, self._config_desc(rec)]
        for d in rec.layers:
            self.emit({"status": "Preparing", "progressDetail": {}, "id": short_id(d.digest)})
        run_all(self._blob, blobs, self.workers)
        raw = self.svc.store.read(rec.manifest_digest)
        got = self.client.put_manifest(ref.tag, raw, media_type_of(raw))
        if got and got != rec.manifest_digest:
            raise DigestMismatch(
                f"{ref.registry} named the manifest of {ref.familiar()} {got}, "
                f"but its content has digest {rec.manifest_digest}"
            )
        self.svc.index.put(rec, [(f"{ref.name}@{rec.manifest_digest}", "digest")])
        size = len(raw)
        self.emit({"status": f"{ref.tag}: digest: {rec.manifest_digest} size: {size}"})
        aux = {"Tag": ref.tag, "Digest": rec.manifest_digest, "Size": size}
        self.emit({"progressDetail": {}, "aux": aux})
        return rec.manifest_digest

    def _config_desc(self, rec: ImageRecord) -> Descriptor:
        raw = self.svc.store.read(rec.config_digest)
        return Descriptor("", rec.config_digest, len(raw))

    def _blob(self, desc: Descriptor) -> None:
        sid = short_id(desc.digest)
        layer = bool(desc.media_type)
        say = self.emit if layer else (lambda _e: None)
        if self.client.has_blob(desc.digest):
            say({"status": "Layer already exists", "progressDetail": {}, "id": sid})
            return
        source = self._mount_source(desc.digest)
        location = self.client.start_upload(desc.digest, source)
        if location is None:
            say({"status": f"Mounted from {source}", "progressDetail": {}, "id": sid})
            return

        def sent(n: int) -> None:
            detail = {"current": n, "total": desc.size}
            say({"status": "Pushing", "progressDetail": detail, "id": sid})

        self.client.upload(location, self.svc.store.path(desc.digest), desc, sent)
        with self._lock:
            self.uploaded += 1
        say({"status": "Pushed", "progressDetail": {}, "id": sid})

    def _mount_source(self, digest: str) -> str | None:
        """Another repository of the same registry known to hold this blob."""
        client = self.client
        for rec in self.svc.index.all():
            if digest not in {d.digest for d in rec.layers} | {rec.config_digest}:
                continue
            for name in rec.digests:
                ref = parse_reference(name.split("@", 1)[0], default_tag=False)
                if ref.registry == client.registry and ref.repository != client.repository:
                    return ref.repository
        return None
