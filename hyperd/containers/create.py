"""A new container record from a create spec: image defaults, name, resources, networks."""

from __future__ import annotations

import asyncio
import errno
import secrets
import struct
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from hyperd.errors import HyperError, InvalidArgument, NotFound
from hyperd.images.errors import ImageNotFound
from hyperd.images.reference import parse_reference
from hyperd.network import DEFAULT as DEFAULT_NETWORK
from hyperd.network import HOST, HOST_REFUSED, NONE
from hyperd.vm.machine import DOMAIN_PREFIX

from .model import Attachment, Container
from .spec import ContainerConfig, CreateSpec, EndpointSpec, Healthcheck, container_name, vcpus
from .state import now_rfc3339
from .volumes import resolve as resolve_mounts

if TYPE_CHECKING:
    from .service import ContainerService

RW_DISK, RW_DISK_SIZE = "rw.ext4", "4G"  # the writable layer's file (sparse) and size
# ext4's superblock (at byte 1024): s_mtime (last mount time), s_mnt_count, s_magic.
_SB_OFFSET, _SB_MTIME, _SB_MNT_COUNT, _SB_MAGIC, EXT4_MAGIC = 1024, 0x2C, 0x34, 0x38, 0xEF53


async def new_container(svc: ContainerService, spec: CreateSpec) -> Container:
    """The record of a container about to be created (nothing written yet)."""
    image_id, icfg = await _image(svc, spec.config.image)
    cid = secrets.token_hex(32)
    config = with_image_defaults(spec.config, icfg, cid)
    if not config.entrypoint and not config.cmd:
        raise InvalidArgument("No command specified")
    name = spec.name or _random_name()
    svc.store.check_name(name)
    for link in spec.host.links:
        svc.store.get(link.partition(":")[0])  # a link to a missing container is an error
    networks = _networks(svc, spec)
    mounts = await resolve_mounts(svc, config, spec.host)
    return Container(
        id=cid,
        name=name,
        created=now_rfc3339(),
        image=spec.config.image,
        image_id=image_id,
        config=config,
        host=spec.host,
        cpus=vcpus_for(svc, spec.host.nano_cpus),
        memory=spec.host.memory or svc.config.memory_bytes,
        networks=networks,
        mounts=mounts,
        sandbox=f"{DOMAIN_PREFIX}{cid[:12]}",
    )


async def _image(svc: ContainerService, ref: str) -> tuple[str, dict]:
    try:
        rec = await asyncio.to_thread(svc.images.resolve, ref)
    except ImageNotFound:
        parse_reference(ref)  # a malformed reference is a 400, not a 404
        raise NotFound(f"No such image: {ref}") from None
    return rec.id, await asyncio.to_thread(svc.images.image_config, rec.id)


def with_image_defaults(cfg: ContainerConfig, icfg: dict, cid: str) -> ContainerConfig:
    """Docker's merge of the image's config under what the user gave."""
    entrypoint, cmd = cfg.entrypoint, cfg.cmd
    if entrypoint is None:
        entrypoint = icfg.get("Entrypoint") or []
        if cmd is None:
            cmd = icfg.get("Cmd") or []
    cmd = cmd or []
    hc = icfg.get("Healthcheck")
    return replace(
        cfg,
        entrypoint=entrypoint,
        cmd=cmd,
        env=image_env_under(icfg.get("Env") or [], cfg.env),
        working_dir=cfg.working_dir or icfg.get("WorkingDir") or "",
        user=cfg.user or icfg.get("User") or "",
        hostname=cfg.hostname or cid[:12],
        labels={**(icfg.get("Labels") or {}), **cfg.labels},
        stop_signal=cfg.stop_signal or icfg.get("StopSignal") or "",
        exposed_ports=list(dict.fromkeys([*(icfg.get("ExposedPorts") or {}), *cfg.exposed_ports])),
        volumes=list(dict.fromkeys([*(icfg.get("Volumes") or {}), *cfg.volumes])),
        healthcheck=_healthcheck_over(cfg.healthcheck, hc if isinstance(hc, dict) else None),
    )


def image_env_under(image: list[str], user: list[str]) -> list[str]:
    """Docker's Config.Env: the user's entries as given (``KEY`` alone included: it unsets
    KEY in the process), then the image's for the keys the user left alone."""
    keys = {item.partition("=")[0] for item in user}
    return [*user, *(item for item in image if item.partition("=")[0] not in keys)]


def _healthcheck_over(user: Healthcheck | None, image: dict | None) -> Healthcheck | None:
    """Docker's merge: what the user left out (an empty test, zero durations) comes from the
    image's HEALTHCHECK."""
    if image is None:
        return user
    base = Healthcheck(
        test=list(image.get("Test") or []),
        interval=int(image.get("Interval") or 0),
        timeout=int(image.get("Timeout") or 0),
        start_period=int(image.get("StartPeriod") or 0),
        retries=int(image.get("Retries") or 0),
        start_interval=int(image.get("StartInterval") or 0),
    )
    if user is None:
        return base
    return Healthcheck(
        test=user.test or base.test,
        interval=user.interval or base.interval,
        timeout=user.timeout or base.timeout,
        start_period=user.start_period or base.start_period,
        retries=user.retries or base.retries,
        start_interval=user.start_interval or base.start_interval,
    )


def _networks(svc: ContainerService, spec: CreateSpec) -> dict[str, Attachment]:
    """The networks the container joins: NetworkMode's first, then NetworkingConfig's."""
    mode = spec.host.network_mode
    if spec.config.network_disabled or mode == NONE:
        return {}
    if mode == HOST:
        raise InvalidArgument(f"network mode host: {HOST_REFUSED}")
    if mode.startswith("container:"):
        raise InvalidArgument(
            f"network mode {mode!r} is not supported: each container has a VM of its own"
        )
    eps = {_default(k): v for k, v in spec.networks.items()}
    refs = list(dict.fromkeys([_default(mode), *eps]))
    net = svc.sandboxes.network
    if net is None:  # the daemon runs without host networking: loopback only
        if refs == [DEFAULT_NETWORK]:
            return {}
        raise InvalidArgument(f'hyperd runs without networking (bridge = ""): no network {mode}')
    out: dict[str, Attachment] = {}
    for ref in refs:
        rec = net.get(ref)
        if rec.name == NONE:
            raise InvalidArgument("a container on network none cannot join other networks")
        ep = next((eps[k] for k in (ref, rec.name, rec.id) if k in eps), None)
        att = Attachment.from_spec(ep or EndpointSpec(), rec.id)
        if att.ipv4_address:
            net.check_address(rec.name, att.ipv4_address)
        out.setdefault(rec.name, att)
    return out


def _default(name: str) -> str:
    """Docker's ``default`` network mode (and EndpointsConfig key) is the bridge."""
    return DEFAULT_NETWORK if name == "default" else name


def vcpus_for(svc: ContainerService, nano_cpus: int) -> int:
    """Whole vCPUs for NanoCpus, the daemon's default when not given."""
    return vcpus(nano_cpus, svc.config.cpus)


def check_new_name(name: str) -> str:
    """A valid container name for rename."""
    if not name:
        raise InvalidArgument("Neither old nor new names may be empty")
    return container_name(name)


async def make_writable_disk(path: Path) -> None:
    """The container's writable layer: a sparse ext4 image, no journal (a VM's disk)."""
    proc = await asyncio.create_subprocess_exec(
        "mkfs.ext4",
        "-q",
        "-F",
        "-O",
        "^has_journal",
        "-E",
        "lazy_itable_init=1",
        str(path),
        RW_DISK_SIZE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode:
        text = err.decode(errors="replace").strip()
        if "No space left" in text:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        raise HyperError(f"mkfs.ext4 failed: {text}")


def writable_disk_blank(path: Path) -> bool:
    """Is the writable layer as ``make_writable_disk`` left it: never mounted by a guest?

    Read from the disk itself rather than from the container's state, since a container
    that never ran may have had files copied in (``cp`` mounts it in a VM of its own). A
    read-write mount counts itself in the superblock at once (ext4 writes it synchronously
    at mount); a read-only mount changes nothing, so the disk is still as made."""
    try:
        with open(path, "rb") as f:
            f.seek(_SB_OFFSET)
            sb = f.read(_SB_MAGIC + 2)
    except OSError:
        return False
    if len(sb) < _SB_MAGIC + 2 or struct.unpack_from("<H", sb, _SB_MAGIC)[0] != EXT4_MAGIC:
        return False
    (mtime,) = struct.unpack_from("<I", sb, _SB_MTIME)
    (count,) = struct.unpack_from("<H", sb, _SB_MNT_COUNT)
    return mtime == 0 and count == 0


_ADJ = ["brave", "calm", "eager", "fond", "keen", "lucid", "merry", "quiet", "sharp", "vivid"]
_NOUN = ["turing", "hopper", "lovelace", "ritchie", "thompson", "knuth", "liskov", "hamilton"]


def _random_name() -> str:
    return f"{secrets.choice(_ADJ)}_{secrets.choice(_NOUN)}_{secrets.token_hex(2)}"
