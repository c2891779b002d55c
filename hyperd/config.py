"""hyperd's configuration: a TOML file (default /etc/hyper/config), every key optional.

root = "/var/lib/hyper"          # images, containers, logs, state.db
run_dir = "/run/hyper"           # VM sockets
socket = "/run/hyper/hyperd.sock"
accel = "auto"                   # auto | kvm | tcg
kernel = "/usr/local/lib/hyper/vmlinux"
initrd = "/usr/local/lib/hyper/initrd.img"
cpus = 1                         # default vCPUs per container
memory = "256m"                  # default memory per container
tb_cache_mib = 32                # TCG translation cache per VM
ksm = false                      # turn the host's KSM on at start: VMs' alike pages kept
                                 # once (denser, but a side channel between VMs)
factory = "cache:1"              # VMs kept booted for containers of the default size
                                 # ("none": every start boots its VM)
vm_uid_base = 100000000          # each VM's QEMU runs as a uid of its own from this range
vm_uid_count = 65536             # (0 = all as libvirt's QEMU user); give each hyperd of a
                                 # host a range of its own
libvirt_uri = "qemu:///system"
libvirt_wait = 120               # seconds to wait for libvirtd at start
agent_timeout = 30               # seconds a guest's agent gets to answer; then the VM is
                                 # reported unresponsive (it is probed every half of it)
log_level = "info"
max_connections = 4096            # open API connections at once (more get a 503)
log_opts = {max-size = "20m", max-file = "5"}   # json-file defaults of every container
volume_size = "10g"              # size of a new volume's (sparse) disk
image_limits = {max-size = "32g", max-files = 2000000, max-depth = 256, max-ratio = 200}
                                 # how far an image may unpack (checked at pull/load)
bridge = "hyper0"                # the default network's bridge ("" = no networking)
subnet = "10.213.0.0/16"         # the default network's subnet
default_address_pools = [{base = "10.40.0.0/14", size = 24}]  # user networks' subnets
insecure_registries = ["myregistry:5000"]
mirrors = ["https://mirror.example"]
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from hyperapi.units import parse_size
from hyperd.errors import InvalidArgument

DEFAULT_PATH = "/etc/hyper/config"


@dataclass
class Config:
    """Daemon settings; see the module docstring for the file format."""

    root: str = "/var/lib/hyper"
    run_dir: str = "/run/hyper"
    socket: str = "/run/hyper/hyperd.sock"
    accel: str = "auto"
    kernel: str = ""
    initrd: str = ""
    cpus: int = 1
    memory: str = "256m"
    tb_cache_mib: int = 32
    ksm: bool = False
    factory: str = "cache:1"
    vm_uid_base: int = 100_000_000
    vm_uid_count: int = 65536
    libvirt_uri: str = "qemu:///system"
    libvirt_wait: float = 120.0
    agent_timeout: float = 30.0
    log_level: str = "info"
    max_connections: int = 4096
    log_opts: dict[str, str] = field(default_factory=lambda: {"max-size": "20m", "max-file": "5"})
    volume_size: str = "10g"
    image_limits: dict = field(default_factory=dict)  # hyperd.images.limits.ImageLimits
    bridge: str = "hyper0"
    subnet: str = "10.213.0.0/16"
    default_address_pools: list[dict] = field(default_factory=list)  # [] = hyper's default
    insecure_registries: list[str] = field(default_factory=list)
    mirrors: list[str] = field(default_factory=list)

    @property
    def memory_bytes(self) -> int:
        """Default memory per container in bytes."""
        return parse_size(self.memory)

    @classmethod
    def load(cls, path: str | None = None) -> Config:
        """Read the file at ``path`` (or $HYPER_CONFIG, or the default path if present)."""
        path = path or os.environ.get("HYPER_CONFIG") or DEFAULT_PATH
        if not Path(path).exists():
            if path != DEFAULT_PATH:
                raise InvalidArgument(f"config file {path} does not exist")
            return cls()
        try:
            data = tomllib.loads(Path(path).read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"config file {path}: {exc}") from exc
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidArgument(f"config file {path}: unknown keys {', '.join(unknown)}")
        switches = [f.name for f in fields(cls) if isinstance(f.default, bool)]
        for key in switches:
            if key in data and not isinstance(data[key], bool):
                raise InvalidArgument(f"config file {path}: {key} must be true or false")
        return cls(**data)
