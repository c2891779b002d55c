"""The VM pool (config ``factory = "cache:N"``): booted, READY guests waiting for a sandbox.

A pool VM boots at the daemon's default size with no name: the kernel, the agent and its
sockets, (with networking) one NIC on a spare tap on no bridge, and the disks a sandbox
will likely ask for (``pooled.py``). A sandbox that fits (default CPUs and memory, no 9p
share, which cannot be hot-plugged) takes one instead of booting: the NIC becomes its first
network's, the disks it holds serve where they can, the other disks and NICs are
hot-plugged and the agent names the pod (see ``Sandboxes.create``). The pool refills in the
background, one boot at a time, so a user's start never waits for a pool boot.

A pool VM is handed out only if the kernel and initrd it booted are still the ones on
disk and its disks' files are still there (``unfit``); others are discarded. A daemon
restart does not keep the pool: the VMs are destroyed with the other VMs of no container
(``restore``), their files swept, and a new pool boots.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hyperd.errors import HyperError

from .sandbox import Sandbox

log = logging.getLogger(__name__)
RETRY_S = 5.0  # pause after a failed pool boot (a broken kernel must not spin)
MAX_POOL = 64


@dataclass(frozen=True)
class Factory:
    """What ``factory`` asks for: ``cache`` VMs kept ready, and whether VMs start as
    clones of a template (``hyperd.sandbox.template``)."""

    cache: int = 0
    template: bool = False


def parse_factory(value: str) -> Factory:
    """``factory``: ``"none"``/``""``, or a comma-separated ``"cache:N"`` and/or
    ``"template"`` (``"template,cache:2"``: two ready VMs, refilled by cloning)."""
    text = (value or "none").strip()
    if text == "none":
        return Factory()
    cache, template = 0, False
    for part in (x.strip() for x in text.split(",")):
        kind, _, count = part.partition(":")
        if part == "template" and not template:
            template = True
        elif kind == "cache" and count.isdigit() and 0 <= int(count) <= MAX_POOL and not cache:
            cache = int(count)
        else:
            raise HyperError(
                f'config: factory = "{value}": expected "none", "cache:N" (N from 0 to '
                f'{MAX_POOL}), "template" or both ("template,cache:N")'
            )
    return Factory(cache, template)


def assets_key(paths: tuple[str, ...]) -> tuple:
    """What identifies the guest files a VM booted (changed files: a different key)."""
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


class Pool:
    """``size`` ready VMs; ``boot()`` makes one, ``discard(sb)`` destroys one, ``unfit(sb)``
    says why a ready one may not be handed out any more ("" when it may)."""

    def __init__(
        self,
        size: int,
        boot: Callable[[], Awaitable[Sandbox]],
        discard: Callable[[Sandbox], Awaitable[None]],
        key: Callable[[], tuple],
        unfit: Callable[[Sandbox], str] = lambda _sb: "",
    ):
        self.size = size
        self._boot, self._discard, self._key, self._unfit = boot, discard, key, unfit
        self._ready: list[tuple[Sandbox, tuple]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing: set[asyncio.Task] = set()

    @property
    def ready(self) -> int:
        """VMs waiting now."""
        return len(self._ready)

    def start(self) -> None:
        """Begin filling in the background."""
        if self.size and self._task is None:
            self._task = asyncio.create_task(self._fill())

    def take(self) -> Sandbox | None:
        """A ready VM (booted with today's kernel and initrd, its disks' files still
        there), or None; refills after."""
        self.prune()
        sb = self._ready.pop(0)[0] if self._ready else None
        self._wake.set()
        return sb

    def prune(self) -> None:
        """Discard the ready VMs that may not be handed out any more (kernel or initrd
        changed, agent gone, ``unfit``); the pool refills."""
        now = self._key()
        keep = []
        for sb, key in self._ready:
            why = self._why_stale(sb, key, now)
            if why:
                log.info("pool: discarding %s (%s)", sb.id, why)
                self._later(self._discard(sb))
            else:
                keep.append((sb, key))
        if len(keep) < len(self._ready):
            self._wake.set()
        self._ready = keep

    def _why_stale(self, sb: Sandbox, key: tuple, now: tuple) -> str:
        if key != now:
            return "the guest kernel or initrd changed"
        if not sb.connected:
            return "its agent is gone"
        return self._unfit(sb)

    async def _fill(self) -> None:
        while True:
            while len(self._ready) < self.size:
                key = self._key()
                try:
                    sb = await self._boot()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - logged; the pool retries
                    log.warning("pool: a VM did not boot: %s", getattr(exc, "message", exc))
                    await asyncio.sleep(RETRY_S)
                    continue
                why = self._unfit(sb)  # a disk removed while it booted
                if why:
                    log.info("pool: discarding %s (%s)", sb.id, why)
                    self._later(self._discard(sb))
                    continue
                self._ready.append((sb, key))
                log.debug("pool: %s ready (%d/%d)", sb.id, len(self._ready), self.size)
            self._wake.clear()
            await self._wake.wait()

    def _later(self, coro: Awaitable) -> None:
        task = asyncio.ensure_future(coro)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Stop filling and destroy the ready VMs."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        ready, self._ready = self._ready, []
        await asyncio.gather(*(self._discard(sb) for sb, _ in ready), return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)
