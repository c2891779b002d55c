"""The mount flags of ``run``/``create`` as the docker CLI reads them: ``-v/--volume`` into
HostConfig.Binds (or Config.Volumes), ``--mount`` into HostConfig.Mounts objects, ``--tmpfs``
into HostConfig.Tmpfs. The daemon checks what the values mean; here only their syntax."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable

from hyperapi.errors import InvalidArgument
from hyperapi.units import parse_size

# strconv.ParseBool's spellings
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
# Docker's --mount keys that hyperd cannot honour: refused rather than silently ignored
_UNSUPPORTED = {"bind-nonrecursive", "bind-recursive", "bind-create-mountpoint", "volume-opt"}


def _local_path(path: str) -> str:
    """``.`` and ``./x`` made absolute, as the docker CLI does (other paths stay as given)."""
    return os.path.abspath(path) if path == "." or path.startswith("./") else path


def parse_volumes(specs: Iterable[str]) -> tuple[list[str], dict[str, dict]]:
    """``-v`` values → (HostConfig.Binds, Config.Volumes): a lone path is an anonymous volume;
    ``SOURCE:TARGET[:OPTIONS]`` is a bind (a path) or a named volume, passed on as a string."""
    binds: list[str] = []
    volumes: dict[str, dict] = {}
    for spec in specs:
        if not spec:
            raise InvalidArgument("invalid empty volume spec")
        if spec.count(":") > 2:
            raise InvalidArgument(f"invalid spec: {spec}: too many colons")
        source, sep, rest = spec.partition(":")
        if not sep or len(spec) <= 2:
            volumes[spec] = {}
        else:
            binds.append(f"{_local_path(source)}:{rest}")
    return binds, volumes


def _bool(key: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidArgument(f"invalid value for {key}: {value}")


def _tmpfs_mode(key: str, value: str) -> int:
    if not re.fullmatch(r"[0-7]+", value) or int(value, 8) >= 1 << 32:
        raise InvalidArgument(f"invalid value for {key}: {value}")
    return int(value, 8)


def _tmpfs_size(key: str, value: str) -> int:
    try:
        return parse_size(value)
    except InvalidArgument:
        raise InvalidArgument(f"invalid value for {key}: {value}") from None


class _Mount:
    """One ``--mount`` value being read: the Mount object and its option groups."""

    def __init__(self):
        self.m: dict = {"Type": "volume"}
        self.groups: dict[str, dict] = {}

    def group(self, name: str) -> dict:
        if name == "VolumeOptions" and name not in self.groups:
            self.groups[name] = {"Labels": {}}
        return self.groups.setdefault(name, {})

    def flag(self, field: str) -> None:
        """A key given without ``=value``."""
        if field in ("readonly", "ro"):
            self.m["ReadOnly"] = True
        elif field == "volume-nocopy":
            self.group("VolumeOptions")["NoCopy"] = True
        elif field in _UNSUPPORTED:
            raise InvalidArgument(f"mount option '{field}' is not supported by hyper")
        else:
            raise InvalidArgument(f"invalid field '{field}' must be a key=value pair")

    def set(self, key: str, value: str, field: str) -> None:
        """``key=value``."""
        if key == "type":
            self.m["Type"] = value.lower()
        elif key in ("source", "src"):
            self.m["Source"] = _local_path(value)
        elif key in ("target", "dst", "destination"):
            self.m["Target"] = value
        elif key in ("readonly", "ro"):
            self.m["ReadOnly"] = _bool(key, value)
        elif key == "consistency":
            self.m["Consistency"] = value.lower()
        elif key == "bind-propagation":
            self.group("BindOptions")["Propagation"] = value.lower()
        elif key == "volume-nocopy":
            self.group("VolumeOptions")["NoCopy"] = _bool(key, value)
        elif key == "volume-label":
            k, _, v = value.partition("=")
            if k:
                self.group("VolumeOptions")["Labels"][k] = v
        elif key == "volume-driver":
            self.group("VolumeOptions")["DriverConfig"] = {"Name": value}
        elif key == "volume-subpath":
            self.group("VolumeOptions")["Subpath"] = value
        elif key == "tmpfs-size":
            self.group("TmpfsOptions")["SizeBytes"] = _tmpfs_size(key, value)
        elif key == "tmpfs-mode":
            self.group("TmpfsOptions")["Mode"] = _tmpfs_mode(key, value)
        elif key in _UNSUPPORTED:
            raise InvalidArgument(f"mount option '{key}' is not supported by hyper")
        else:
            raise InvalidArgument(f"unexpected key '{key}' in '{field}'")

    def finish(self) -> dict:
        """The Mount object, once its fields agree with each other."""
        kind = self.m["Type"]
        if not kind:
            raise InvalidArgument("type is required")
        if not self.m.get("Target"):
            raise InvalidArgument("target is required")
        for group, owner in (
            ("VolumeOptions", "volume"),
            ("BindOptions", "bind"),
            ("TmpfsOptions", "tmpfs"),
        ):
            if group in self.groups and kind != owner:
                raise InvalidArgument(f"cannot mix '{owner}-*' options with mount type '{kind}'")
        return {**self.m, **self.groups}


def parse_mount(value: str) -> dict:
    """One ``--mount`` value (Docker's csv syntax) → a HostConfig.Mounts object."""
    fields = next(csv.reader([value]), None)
    if not fields:
        raise InvalidArgument("empty mount specification")
    mount = _Mount()
    for field in fields:
        key, sep, val = field.partition("=")
        if sep:
            mount.set(key.lower(), val, field)
        else:
            mount.flag(key.lower())
    return mount.finish()


def parse_tmpfs(specs: Iterable[str]) -> dict[str, str]:
    """``--tmpfs PATH[:OPTIONS]`` → HostConfig.Tmpfs."""
    out = {}
    for spec in specs:
        path, _, options = spec.partition(":")
        out[path] = options
    return out
