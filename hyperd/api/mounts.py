"""HostConfig.Binds (``-v``), HostConfig.Mounts (``--mount``) and VolumesFrom, decoded into
MountSpecs; every malformed entry is a 400 that quotes it."""

from __future__ import annotations

import posixpath
import re

from hyperd.containers.spec import MountSpec
from hyperd.errors import InvalidArgument

from .fields import Fields

VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
BIND_MODES = {"ro", "rw", "z", "Z", "nocopy", "consistent", "cached", "delegated"}
PROPAGATIONS = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
MOUNT_TYPES = ("bind", "volume", "tmpfs")


def check_volume_name(name: str, where: str = "volume name") -> str:
    """A valid local volume name (Docker's rule: no '/', at least two characters)."""
    if not VOLUME_NAME_RE.match(name):
        raise InvalidArgument(
            f'{where} "{name}" includes invalid characters for a local volume name, '
            "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name


def _target(target: str, where: str) -> str:
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid mount config {where}: {target!r} is not an absolute path")
    target = posixpath.normpath(target)
    if target == "/":
        raise InvalidArgument(f"invalid mount config {where}: the destination can't be '/'")
    return target


def parse_bind(spec: str) -> MountSpec:
    """One ``-v`` value: ``/host:/target[:opts]``, ``name:/target[:opts]`` or ``/target``."""
    parts = spec.split(":")
    if len(parts) == 1:
        return MountSpec("volume", _target(parts[0], spec), from_binds=True)
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    source, target = parts[0], _target(parts[1], spec)
    modes = [m for m in parts[2].split(",") if m] if len(parts) == 3 else []
    propagation = ""
    for mode in modes:
        if mode in PROPAGATIONS:
            propagation = mode
        elif mode not in BIND_MODES:
            raise InvalidArgument(f"invalid mode: {mode} (in volume specification '{spec}')")
    if "ro" in modes and "rw" in modes:
        raise InvalidArgument(f"invalid mode: ro and rw together in '{spec}'")
    readonly = "ro" in modes
    if source.startswith("/"):
        return MountSpec(
            "bind",
            target,
            posixpath.normpath(source),
            readonly=readonly,
            create_source=True,
            propagation=propagation or "rprivate",
            from_binds=True,
        )
    if propagation:
        raise InvalidArgument(f"invalid mode: {propagation} applies to bind mounts only ('{spec}')")
    check_volume_name(source, f"in '{spec}', the")
    return MountSpec(
        "volume", target, source, readonly=readonly, no_copy="nocopy" in modes, from_binds=True
    )


def parse_mount(m: Fields) -> MountSpec:
    """One HostConfig.Mounts entry."""
    kind = m.str("Type")
    if kind not in MOUNT_TYPES:
        raise InvalidArgument(
            f"{m.name('Type')}: invalid mount type {kind!r} (bind, volume, tmpfs)"
        )
    target = _target(m.str("Target"), m.name("Target"))
    source = m.str("Source")
    readonly = m.bool("ReadOnly")
    if kind == "bind":
        if not source.startswith("/"):
            raise InvalidArgument(f"{m.name('Source')}: bind source must be an absolute path")
        propagation = m.sub("BindOptions").str("Propagation") or "rprivate"
        if propagation not in PROPAGATIONS:
            raise InvalidArgument(f"{m.name('BindOptions')}: invalid propagation {propagation!r}")
        return MountSpec("bind", target, posixpath.normpath(source), readonly, False, propagation)
    if kind == "volume":
        if source:
            check_volume_name(source, m.name("Source"))
        opts = m.sub("VolumeOptions")
        driver = opts.sub("DriverConfig").str("Name")
        if driver not in ("", "local"):
            raise InvalidArgument(f"{m.name('VolumeOptions')}: volume driver {driver!r} not found")
        subpath = opts.str("Subpath")
        if subpath and (subpath.startswith("/") or ".." in subpath.split("/")):
            raise InvalidArgument(
                f"{m.name('VolumeOptions.Subpath')}: {subpath!r} leaves the volume"
            )
        return MountSpec(
            "volume",
            target,
            source,
            readonly,
            no_copy=opts.bool("NoCopy"),
            labels=opts.str_map("Labels"),
            subpath=subpath,
        )
    if source:
        raise InvalidArgument(f"{m.name('Source')}: a tmpfs mount has no source")
    opts = m.sub("TmpfsOptions")
    return MountSpec(
        "tmpfs",
        target,
        readonly=readonly,
        tmpfs_size=opts.int("SizeBytes"),
        tmpfs_mode=opts.int("Mode", hi=0o7777),
    )


def mounts(f: Fields) -> list[MountSpec]:
    """Binds then Mounts of a HostConfig; two mounts on one target are a 400."""
    out = [parse_bind(b) for b in f.str_list("Binds")]
    out += [parse_mount(m) for m in f.object_list("Mounts")]
    seen = set()
    for m in out:
        if m.target in seen:
            raise InvalidArgument(f"Duplicate mount point: {m.target}")
        seen.add(m.target)
    return out


def volumes_from(f: Fields) -> list[str]:
    """VolumesFrom: ``CONTAINER[:ro|rw]``."""
    out = f.str_list("VolumesFrom")
    for item in out:
        name, _, mode = item.partition(":")
        if not name or mode not in ("", "ro", "rw"):
            raise InvalidArgument(f"HostConfig.VolumesFrom: invalid entry {item!r}")
    return out
