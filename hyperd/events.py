"""The daemon's event stream (``GET /events``, ``docker events``).

Events are kept in a bounded in-memory ring for ``since`` queries and delivered live to each
subscriber through a bounded queue: a subscriber that does not keep up gets what its queue
held and then its stream ends; it never makes the daemon's memory grow.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

HISTORY = 1024
QUEUE = 1024
FILTERS = {"container", "event", "image", "label", "network", "type", "volume", "daemon"}


@dataclass
class Event:
    """One event, in Docker's shape."""

    type: str  # container | image | network | volume | daemon
    action: str
    actor: str  # ID (or name, for images)
    attributes: dict[str, str] = field(default_factory=dict)
    time_nano: int = field(default_factory=time.time_ns)

    def to_json(self) -> dict:
        """The wire form, with the legacy fields Docker still sends for containers/images."""
        out = {
            "Type": self.type,
            "Action": self.action,
            "Actor": {"ID": self.actor, "Attributes": self.attributes},
            "scope": "local",
            "time": self.time_nano // 1_000_000_000,
            "timeNano": self.time_nano,
        }
        if self.type in ("container", "image"):
            out["status"] = self.action
            out["id"] = self.actor
            if "image" in self.attributes:
                out["from"] = self.attributes["image"]
        return out

    def matches(self, filters: dict[str, list[str]]) -> bool:
        """Docker's event filters: every key must match one of its values."""
        return all(any(self._match(key, v) for v in vs) for key, vs in filters.items())

    def _match(self, key: str, value: str) -> bool:
        if key == "type":
            return self.type == value
        if key == "event":
            return self.action == value or self.action.split(":", 1)[0] == value
        if key == "label":
            k, sep, v = value.partition("=")
            return k in self.attributes and (not sep or self.attributes[k] == v)
        if key in ("container", "image", "network", "volume", "daemon"):
            if key == "image" and self.type == "container":
                return self.attributes.get("image") == value
            if self.type != key:
                return False
            return value in (self.actor, self.attributes.get("name")) or self.actor.startswith(
                value
            )
        return False


class _Subscription:
    """One live reader: a bounded queue, and whether it fell too far behind."""

    def __init__(self):
        self.queue: asyncio.Queue = asyncio.Queue(QUEUE)
        self.overflowed = False


class EventBus:
    """Publish events; subscribe with history since a time and live ones after."""

    def __init__(self):
        self._history: deque[Event] = deque(maxlen=HISTORY)
        self._subscribers: set[_Subscription] = set()

    def publish(self, type_: str, action: str, actor: str, **attributes: str) -> None:
        """Record and deliver one event."""
        event = Event(type_, action, actor, {k: str(v) for k, v in attributes.items()})
        self._history.append(event)
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:  # too slow: its stream ends instead of growing
                self._subscribers.discard(sub)
                sub.overflowed = True

    async def stream(
        self,
        since: float | None = None,
        until: float | None = None,
        filters: dict[str, list[str]] | None = None,
    ) -> AsyncIterator[Event]:
        """Past events since ``since`` then live ones, until ``until`` (or forever)."""
        filters = filters or {}
        sub = _Subscription()
        live = until is None or until > time.time()
        if live:
            self._subscribers.add(sub)
        try:
            if since is not None:
                for event in list(self._history):
                    t = event.time_nano / 1e9
                    if t >= since and (until is None or t <= until) and event.matches(filters):
                        yield event
            while live:
                if sub.overflowed:
                    if sub.queue.empty():
                        return
                    event = sub.queue.get_nowait()
                else:
                    timeout = None if until is None else max(until - time.time(), 0)
                    try:
                        event = await asyncio.wait_for(sub.queue.get(), timeout)
                    except TimeoutError:
                        return
                if event.matches(filters):
                    yield event
        finally:
            self._subscribers.discard(sub)
