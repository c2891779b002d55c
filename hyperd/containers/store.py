"""The daemon's containers: lookup by ID, name or prefix, listing with Docker's filters, and
persistence of each record in the state database."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterator

from hyperd.errors import Conflict, InvalidArgument, NotFound
from hyperd.state import StateStore

from .model import Container
from .state import EXITED

log = logging.getLogger(__name__)

LIST_FILTERS = {
    "ancestor",
    "before",
    "exited",
    "expose",
    "health",
    "id",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
}
HEALTH_FILTERS = ("starting", "healthy", "unhealthy", "none")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


class ContainerStore:
    """Container records in memory, written through to the state database."""

    def __init__(self, db: StateStore, resolve_image: Callable[[str], str | None]):
        self.db = db
        self._resolve_image = resolve_image  # a reference -> image ID, for ancestor=
        self._by_id: dict[str, Container] = {}

    def __iter__(self) -> Iterator[Container]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, cid: str) -> bool:
        return cid in self._by_id

    def load(self) -> None:
        """Read every record (at start-up); unreadable ones are logged and left in place."""
        for data in self.db.all():
            try:
                c = Container.from_dict(data)
            except (TypeError, KeyError, ValueError) as exc:
                log.error("skipping container record %s: %s", data.get("id", "?"), exc)
                continue
            self._by_id[c.id] = c

    def get(self, ref: str) -> Container:
        """A container by full ID, name (with or without '/'), or unique ID prefix."""
        ref = ref.removeprefix("/")
        if ref in self._by_id:
            return self._by_id[ref]
        for c in self._by_id.values():
            if c.name == ref:
                return c
        matches = [c for c in self._by_id.values() if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple containers match the ID prefix {ref}")
        raise NotFound(f"No such container: {ref}")

    def find(self, ref: str) -> Container | None:
        """Like get, None when there is no such container."""
        try:
            return self.get(ref)
        except NotFound:
            return None

    def check_name(self, name: str, cid: str = "") -> None:
        """Conflict when another container has this name."""
        other = next((c for c in self._by_id.values() if c.name == name), None)
        if other is not None and other.id != cid:
            raise Conflict(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{other.id}". You have to remove (or rename) that container to be able to '
                "reuse that name."
            )

    async def add(self, c: Container) -> None:
        """Record a new container (atomically: a name clash leaves nothing behind)."""
        self.check_name(c.name)
        try:
            await asyncio.to_thread(self.db.put, c.id, c.name, c.to_dict())
        except sqlite3.IntegrityError:
            raise Conflict(f'The container name "/{c.name}" is already in use') from None
        self._by_id[c.id] = c

    async def save(self, c: Container) -> None:
        """Write a changed record (no-op for a container already removed)."""
        if c.id in self._by_id:
            await asyncio.to_thread(self.db.put, c.id, c.name, c.to_dict())

    async def remove(self, c: Container) -> None:
        """Forget a container."""
        self._by_id.pop(c.id, None)
        await asyncio.to_thread(self.db.delete, c.id)

    def list(self, all_: bool = False, filters: dict[str, list[str]] | None = None):
        """Containers, newest first; without all_, only running ones (Docker's ps)."""
        filters = filters or {}
        out = sorted(self._by_id.values(), key=lambda c: c.created, reverse=True)
        if not all_ and not filters.get("status") and not filters.get("exited"):
            out = [c for c in out if c.running]
        for key, values in filters.items():
            if key == "before" or key == "since":
                out = self._order_filter(out, key, values)
                continue
            match = all if key == "label" else any  # Docker: every label, any other value
            out = [c for c in out if match(self._matches(c, key, v) for v in values)]
        return out

    def _order_filter(self, out: list[Container], key: str, values: list[str]):
        for ref in values:
            pivot = self.get(ref)
            if key == "before":
                out = [c for c in out if c.created < pivot.created]
            else:
                out = [c for c in out if c.created > pivot.created]
        return out

    def _matches(self, c: Container, key: str, value: str) -> bool:
        if key == "status":
            if value not in STATUSES:
                raise InvalidArgument(f"invalid filter 'status={value}'")
            return c.state.status == value
        if key == "exited":
            if not value.lstrip("-").isdigit():
                raise InvalidArgument(f"invalid filter 'exited={value}'")
            return c.state.status == EXITED and c.state.exit_code == int(value)
        if key == "health":
            if value not in HEALTH_FILTERS:
                raise InvalidArgument(f"Unrecognised filter value for health: {value}")
            return (c.state.health or "none") == value
        if key == "name":
            return value.removeprefix("/") in c.name
        if key == "id":
            return c.id.startswith(value)
        if key == "label":
            k, sep, v = value.partition("=")
            labels = c.config.labels
            return k in labels and (not sep or labels[k] == v)
        if key == "network":
            return any(value in (name, a.network_id) for name, a in c.networks.items())
        if key in ("publish", "expose"):
            return _port_matches(c, key, value)
        image_id = self._resolve_image(value)  # ancestor
        return value == c.image or (image_id is not None and image_id == c.image_id)


def _port_matches(c: Container, key: str, value: str) -> bool:
    port, _, proto = value.partition("/")
    proto = proto or "tcp"
    if key == "publish":
        return any(str(p.host_port) == port and p.proto == proto for p in c.published)
    return f"{port}/{proto}" in c.config.exposed_ports
