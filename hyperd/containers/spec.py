"""What a user asked for, typed: Docker's bodies decoded once (by hyperd/api/decode.py).

Nothing here knows Docker's JSON shapes or HTTP; the daemon's core takes these objects and
never looks at a request body. Every field has the value Docker gives it when the client left
it out, so a spec built in code (tests, the CLI's defaults) means the same as a decoded one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from hyperd.errors import InvalidArgument

# Docker's restart policy names.
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def container_name(name: str | None) -> str:
    """A container name as Docker allows it, without its leading '/' ('' when not given)."""
    if not name:
        return ""
    if not NAME_RE.match(name):
        raise InvalidArgument(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name.removeprefix("/")


def vcpus(nano_cpus: int, default: int) -> int:
    """Whole vCPUs for a NanoCpus value (a VM cannot have a fraction of one)."""
    return math.ceil(nano_cpus / 1e9) if nano_cpus else default


@dataclass(frozen=True)
class PortRequest:
    """One port to publish: host ``host_ip:host_port`` (0 = any free port) -> container ``port``."""

    port: int
    proto: str = "tcp"
    host_ip: str = ""
    host_port: int = 0


@dataclass
class RestartPolicy:
    """Docker's restart policy."""

    name: str = "no"  # no | on-failure | always | unless-stopped
    maximum_retry_count: int = 0


@dataclass
class LogConfig:
    """Where a container's output goes: ``json-file`` (hyper's own log files) or ``none``."""

    type: str = "json-file"
    config: dict[str, str] = field(default_factory=dict)


@dataclass
class EndpointSpec:
    """How a container joins one network: extra names other containers reach it by."""

    aliases: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # NAME:ALIAS
    ipv4_address: str = ""
    driver_opts: dict[str, str] = field(default_factory=dict)  # kept for inspect
    mac_address: str = ""  # the NIC's MAC on this network ('' = one derived by hyperd)
    link_local_ips: list[str] = field(default_factory=list)  # more addresses on the NIC


@dataclass
class Healthcheck:
    """Docker's HEALTHCHECK: a test command and its timing (nanoseconds, as in the API)."""

    test: list[str] = field(default_factory=list)
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    retries: int = 0
    start_interval: int = 0  # between probes during the start period (default: interval)


@dataclass
class ContainerConfig:
    """Docker's container Config: the process and its identity, before image defaults apply.

    ``cmd``/``entrypoint`` are None when not given (the image's apply); an empty list given
    explicitly clears them.
    """

    image: str = ""
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    stop_timeout: int | None = None
    exposed_ports: list[str] = field(default_factory=list)  # "80/tcp"
    volumes: list[str] = field(default_factory=list)  # anonymous volume targets
    healthcheck: Healthcheck | None = None
    mac_address: str = ""
    network_disabled: bool = False


@dataclass
class MountSpec:
    """A filesystem the container sees at ``target``: a host directory (bind), a named or
    anonymous volume, or a tmpfs."""

    type: str  # bind | volume | tmpfs
    target: str
    source: str = ""  # host path (bind), volume name (volume; "" = anonymous)
    readonly: bool = False
    create_source: bool = False  # -v creates a missing host directory; --mount refuses
    propagation: str = ""
    no_copy: bool = False  # volume: do not fill a new volume with the image's content
    labels: dict[str, str] = field(default_factory=dict)  # volume: labels of a new one
    subpath: str = ""  # volume: mount this directory of it
    tmpfs_size: int = 0
    tmpfs_mode: int = 0
    from_binds: bool = False  # given as HostConfig.Binds (shown there by inspect)


@dataclass
class HostSpec:
    """Docker's HostConfig: what the host provides the container."""

    auto_remove: bool = False
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpuset_cpus: str = ""
    memory: int = 0  # bytes; 0 = the daemon's default
    port_bindings: list[PortRequest] = field(default_factory=list)
    publish_all: bool = False
    network_mode: str = "default"
    links: list[str] = field(default_factory=list)  # NAME:ALIAS
    extra_hosts: list[str] = field(default_factory=list)  # HOST:IP
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    log_config: LogConfig = field(default_factory=LogConfig)
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)  # as given; decoded below
    no_new_privileges: bool = False
    seccomp: bool = True  # the default profile; False: seccomp=unconfined
    readonly_rootfs: bool = False
    tmpfs: dict[str, str] = field(default_factory=dict)  # target -> options
    shm_size: int = 0
    sysctls: dict[str, str] = field(default_factory=dict)
    group_add: list[str] = field(default_factory=list)
    init: bool | None = None
    console_size: tuple[int, int] | None = None  # the terminal's rows, columns at start
    mounts: list[MountSpec] = field(default_factory=list)  # Binds, Mounts and Tmpfs
    volumes_from: list[str] = field(default_factory=list)  # CONTAINER[:ro|rw]
    runtime: str = ""  # "" (hyper's VM runtime) or a name of it Docker clients use
    # Accepted and shown by inspect, with no effect inside a VM (documented in docs/compat.md).
    passthrough: dict = field(default_factory=dict)


@dataclass
class CreateSpec:
    """Everything ``POST /containers/create`` asks for."""

    config: ContainerConfig
    host: HostSpec = field(default_factory=HostSpec)
    networks: dict[str, EndpointSpec] = field(default_factory=dict)
    name: str = ""


@dataclass
class ExecSpec:
    """``POST /containers/{id}/exec``."""

    cmd: list[str]
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = True
    attach_stderr: bool = True
    privileged: bool = False
    console_size: tuple[int, int] | None = None
    detach_keys: str = ""  # as given (validated); "" is Docker's ctrl-p,ctrl-q


@dataclass
class UpdateSpec:
    """``POST /containers/{id}/update``: None leaves a setting as it is."""

    restart: RestartPolicy | None = None
    memory: int | None = None
    nano_cpus: int | None = None
    cpu_shares: int | None = None
