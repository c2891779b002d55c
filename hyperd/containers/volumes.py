"""A container's mounts resolved at create: named and anonymous volumes made, the image's
VOLUMEs given anonymous volumes, VolumesFrom copied, bind sources checked."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import replace
from typing import TYPE_CHECKING

from hyperd.errors import InvalidArgument

from .model import Container
from .spec import ContainerConfig, HostSpec, MountSpec

if TYPE_CHECKING:
    from .service import ContainerService


async def resolve(
    svc: ContainerService, config: ContainerConfig, host: HostSpec
) -> list[MountSpec]:
    """The container's mounts, every volume with its name; new volumes are created here."""
    out = [replace(m) for m in host.mounts]
    for ref in host.volumes_from:
        out += _from(svc, ref, {m.target for m in out})
    covered = {m.target for m in out}
    out += [MountSpec("volume", t) for t in config.volumes if t not in covered]
    for m in out:
        if m.type == "bind" and not m.create_source and not os.path.exists(m.source):
            raise InvalidArgument(
                f'invalid mount config for type "bind": bind source path does not exist: {m.source}'
            )
        if m.type == "volume":
            vol = await asyncio.to_thread(svc.volumes.create, m.source, m.labels)
            m.source = vol.name
    return out


def _from(svc: ContainerService, ref: str, taken: set[str]) -> list[MountSpec]:
    name, _, mode = ref.partition(":")
    other = svc.store.get(name)
    out = []
    for m in other.mounts:
        if m.type == "tmpfs" or m.target in taken:
            continue
        readonly = m.readonly if not mode else mode == "ro"
        out.append(replace(m, readonly=readonly, from_binds=False))
    return out


def anonymous(svc: ContainerService, c: Container) -> list[str]:
    """Names of c's anonymous volumes (removed with ``rm -v`` and ``--rm``)."""
    names = []
    for m in c.mounts:
        if m.type != "volume":
            continue
        try:
            if svc.volumes.get(m.source).anonymous:
                names.append(m.source)
        except Exception:  # noqa: BLE001 - already gone
            continue
    return names


def volume_names(c: Container) -> set[str]:
    """Names of the volumes c mounts."""
    return {m.source for m in c.mounts if m.type == "volume"}


def has_durable_mounts(c: Container) -> bool:
    """Does c mount a volume or a bind (what it writes there must be synced and unmounted
    before its VM goes)?"""
    return any(m.type != "tmpfs" for m in c.mounts)


def users(svc: ContainerService, name: str) -> list[str]:
    """IDs of the containers that mount a volume."""
    return [c.id for c in svc.store if name in volume_names(c)]


async def snapshot(svc: ContainerService, volume: str, name: str):
    """A consistent snapshot of a volume: the running VMs that mount it have their
    filesystems synced by the agent and are paused while the disk is copied."""
    users = [svc.store.get(cid) for cid in svc.volume_users(volume)]
    runs = [(c, svc.monitor.run(c.id)) for c in users if svc.monitor.run(c.id) is not None]
    async with contextlib.AsyncExitStack() as stack:
        for c, _ in sorted(runs, key=lambda x: x[0].id):
            await stack.enter_async_context(svc.lock(c.id))
        paused = []
        try:
            for c, run in runs:
                if not c.state.paused:
                    await run.sandbox.agent.sync(c.id)
                    await run.sandbox.pause()
                    paused.append(run)
            return await asyncio.to_thread(svc.volumes.snapshots.take, volume, name)
        finally:
            for run in paused:
                await run.sandbox.resume()
