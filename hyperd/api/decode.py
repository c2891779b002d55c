"""Docker's request bodies and query parameters decoded once, into the typed specs of the core.

A wrong type, an unknown value or an impossible size is a 400 that names the field, at
create time; nothing past this module looks at Docker's JSON.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re

from hyperapi.portspec import parse_exposed
from hyperd.containers import spec as s
from hyperd.containers.logs import log_limits
from hyperd.containers.signals import parse_signal
from hyperd.errors import InvalidArgument

from . import detach
from .fields import Fields
from .mounts import mounts as mount_specs
from .mounts import volumes_from
from .security import capabilities, security_opts

MIN_MEMORY = 64 << 20  # a guest kernel and agent need this much
HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9_.-]*[a-zA-Z0-9])?$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
CPUSET_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
LOG_DRIVERS = ("json-file", "local", "none")
# Every container is a VM; "runc", Docker's default runtime, names the default here too.
RUNTIMES = ("hyper", "runc")

# HostConfig fields a VM cannot honour as Docker does (cgroup knobs, kernel namespaces of the
# host): accepted so that clients sending them work, shown by inspect, listed in docs/compat.md.
PASSTHROUGH = (
    "BlkioWeight",
    "CgroupParent",
    "CgroupnsMode",
    "CpuCount",
    "CpuPercent",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpusetMems",
    "DeviceCgroupRules",
    "Devices",
    "IpcMode",
    "Isolation",
    "KernelMemory",
    "MemoryReservation",
    "MemorySwap",
    "MemorySwappiness",
    "OomKillDisable",
    "OomScoreAdj",
    "PidMode",
    "PidsLimit",
    "StorageOpt",
    "UTSMode",
    "Ulimits",
    "UsernsMode",
    "VolumeDriver",
)


def host_memory() -> int:
    """Physical memory of the host in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parse_body(raw: bytes) -> dict:
    """A JSON object from a request body (an empty body is an empty object)."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"malformed JSON in request body: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be a JSON object")
    return body


# -- containers ----------------------------------------------------------------------------


def create_spec(body: dict, name: str | None = None) -> s.CreateSpec:
    """``POST /containers/create``."""
    f = Fields(body)
    config = _config(f)
    if not config.image:
        raise InvalidArgument("Image is required")
    host = host_spec(f.sub("HostConfig"))
    if not host.runtime:  # docker-py sends the runtime in Config, beside HostConfig
        host.runtime = _runtime(f)
    networks = _networks(f.sub("NetworkingConfig").sub("EndpointsConfig"))
    return s.CreateSpec(config=config, host=host, networks=networks, name=s.container_name(name))


def _config(f: Fields) -> s.ContainerConfig:
    hostname = f.str("Hostname")
    if hostname and (len(hostname) > 63 or not HOSTNAME_RE.match(hostname)):
        raise InvalidArgument(f"Hostname {hostname[:80]!r} is not a valid host name")
    workdir = f.str("WorkingDir")
    if workdir and not workdir.startswith("/"):
        raise InvalidArgument(f"WorkingDir {workdir!r} is invalid, it needs to be an absolute path")
    stop_signal = f.str("StopSignal")
    if stop_signal:
        try:
            parse_signal(stop_signal)
        except InvalidArgument:
            raise InvalidArgument(f"StopSignal {stop_signal!r} is not a signal") from None
    exposed = f.keys("ExposedPorts")
    for key in exposed:
        parse_exposed(key)
    volumes = f.keys("Volumes")
    for target in volumes:
        if not target.startswith("/"):
            raise InvalidArgument(f"Volumes: {target!r} is not an absolute path")
    return s.ContainerConfig(
        image=f.str("Image"),
        cmd=f.command("Cmd"),
        entrypoint=f.command("Entrypoint"),
        env=_env(f, "Env"),
        working_dir=workdir,
        user=f.str("User"),
        hostname=hostname,
        domainname=f.str("Domainname"),
        tty=f.bool("Tty"),
        open_stdin=f.bool("OpenStdin"),
        stdin_once=f.bool("StdinOnce"),
        attach_stdin=f.bool("AttachStdin"),
        attach_stdout=f.bool("AttachStdout"),
        attach_stderr=f.bool("AttachStderr"),
        labels=f.str_map("Labels"),
        stop_signal=stop_signal,
        stop_timeout=f.int("StopTimeout", None, lo=-1) if f.has("StopTimeout") else None,
        exposed_ports=exposed,
        volumes=volumes,
        healthcheck=_healthcheck(f.sub("Healthcheck")) if f.has("Healthcheck") else None,
        mac_address=_mac(f, "MacAddress"),
        network_disabled=f.bool("NetworkDisabled"),
    )


def _mac(f: Fields, key: str) -> str:
    """A unicast MAC address (``02:42:ac:11:00:0a``), in lower case."""
    mac = f.str(key).lower()
    if mac and (not MAC_RE.match(mac) or int(mac[:2], 16) & 1):
        raise InvalidArgument(f"{f.name(key)}: invalid MAC address {mac!r}")
    return mac


def _env(f: Fields, key: str) -> list[str]:
    env = f.str_list(key)
    for item in env:
        if not item or item.startswith("="):
            raise InvalidArgument(f"{f.name(key)}: invalid environment variable {item!r}")
    return env


def _healthcheck(f: Fields) -> s.Healthcheck:
    test = f.command("Test") or []
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise InvalidArgument(f"{f.name('Test')} must start with NONE, CMD or CMD-SHELL")
    return s.Healthcheck(
        test=test,
        interval=_duration(f, "Interval"),
        timeout=_duration(f, "Timeout"),
        start_period=_duration(f, "StartPeriod"),
        retries=f.int("Retries"),
        start_interval=_duration(f, "StartInterval"),
    )


def _duration(f: Fields, key: str) -> int:
    """A healthcheck duration in nanoseconds: 0 (the default) or at least 1ms, as Docker."""
    value = f.int(key)
    if 0 < value < 1_000_000:
        raise InvalidArgument(f"{f.name(key)} in Healthcheck cannot be less than 1ms")
    return value


def host_spec(f: Fields) -> s.HostSpec:
    """Docker's HostConfig."""
    restart = restart_policy(f.sub("RestartPolicy"))
    auto_remove = f.bool("AutoRemove")
    if auto_remove and restart.name != "no":
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    security = security_opts(f)
    return s.HostSpec(
        auto_remove=auto_remove,
        restart=restart,
        nano_cpus=nano_cpus(f, "NanoCpus"),
        cpu_shares=f.int("CpuShares"),
        cpuset_cpus=_cpuset(f),
        memory=memory(f, "Memory"),
        port_bindings=port_bindings(f),
        publish_all=f.bool("PublishAllPorts"),
        network_mode=f.str("NetworkMode") or "default",
        links=_links(f),
        extra_hosts=_extra_hosts(f),
        dns=_ips(f, "Dns"),
        dns_search=f.str_list("DnsSearch"),
        dns_options=f.str_list("DnsOptions"),
        log_config=_log_config(f.sub("LogConfig")),
        privileged=f.bool("Privileged"),
        cap_add=capabilities(f, "CapAdd"),
        cap_drop=capabilities(f, "CapDrop"),
        security_opt=security.given,
        no_new_privileges=security.no_new_privileges,
        seccomp=security.seccomp,
        readonly_rootfs=f.bool("ReadonlyRootfs"),
        tmpfs=_tmpfs(f),
        shm_size=f.int("ShmSize"),
        sysctls=f.str_map("Sysctls"),
        group_add=f.str_list("GroupAdd"),
        init=f.bool("Init") if f.has("Init") else None,
        console_size=console_size(f),
        mounts=mount_specs(f),
        volumes_from=volumes_from(f),
        runtime=_runtime(f),
        passthrough={k: f.obj[k] for k in PASSTHROUGH if f.has(k)},
    )


def _runtime(f: Fields) -> str:
    name = f.str("Runtime")
    if name and name not in RUNTIMES:
        raise InvalidArgument(f"Unknown runtime specified {name}")
    return name


def restart_policy(f: Fields) -> s.RestartPolicy:
    """HostConfig.RestartPolicy."""
    name = f.str("Name") or "no"
    if name not in s.RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy '{name}'")
    count = f.int("MaximumRetryCount")
    if count and name != "on-failure":
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
    return s.RestartPolicy(name, count)


def memory(f: Fields, key: str) -> int:
    """A memory size in bytes: 0 (the default) or between the VM minimum and the host's RAM."""
    value = f.int(key)
    if value == 0:
        return 0
    if value < MIN_MEMORY:
        raise InvalidArgument(f"{f.name(key)}: minimum memory limit allowed is 64MB")
    total = host_memory()
    if value > total:
        raise InvalidArgument(
            f"{f.name(key)}: {value} bytes is more than the host memory ({total >> 20} MiB)"
        )
    return value


def nano_cpus(f: Fields, key: str) -> int:
    """CPUs in units of 1e-9, at most the host's CPUs."""
    value = f.int(key)
    host = os.cpu_count() or 1
    if value and not 10_000_000 <= value <= host * 1_000_000_000:
        raise InvalidArgument(
            f"Range of CPUs is from 0.01 to {host}.00, as there are only {host} CPUs available"
        )
    return value


def _cpuset(f: Fields) -> str:
    value = f.str("CpusetCpus")
    if value and not CPUSET_RE.match(value):
        raise InvalidArgument(f"HostConfig.CpusetCpus: invalid value {value!r}")
    return value


def port_bindings(f: Fields) -> list[s.PortRequest]:
    """HostConfig.PortBindings: ``{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}``."""
    bindings = f.sub("PortBindings")
    out = []
    for key in bindings.obj:
        port, proto = parse_exposed(key)
        hosts = bindings.object_list(key) or [Fields({})]
        for h in hosts:
            host_ip = h.str("HostIp")
            if host_ip:
                try:
                    ipaddress.IPv4Address(host_ip)
                except ValueError:
                    raise InvalidArgument(f"{h.name('HostIp')}: invalid IP {host_ip!r}") from None
            out.append(s.PortRequest(port, proto, host_ip, _host_port(h)))
    return out


def _host_port(h: Fields) -> int:
    value = h.obj.get("HostPort")
    if value in (None, ""):
        return 0
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise h.bad("HostPort", "a port number")
    text = str(value).partition("-")[0]  # "8000-8010": the first free one is ours to pick
    if not text.isdigit() or int(text) > 65535:
        raise InvalidArgument(f"{h.name('HostPort')}: invalid host port {value!r}")
    return int(text)


def _links(f: Fields) -> list[str]:
    out = []
    for link in f.str_list("Links"):
        name, _, alias = link.removeprefix("/").partition(":")
        if not name:
            raise InvalidArgument(f"HostConfig.Links: invalid link {link!r}")
        out.append(f"{name}:{(alias or name).rsplit('/', 1)[-1]}")
    return out


def _extra_hosts(f: Fields) -> list[str]:
    out = []
    for item in f.str_list("ExtraHosts"):
        host, sep, ip = item.partition(":")
        if not sep or not host:
            raise InvalidArgument(f"HostConfig.ExtraHosts: invalid entry {item!r} (HOST:IP)")
        if ip != "host-gateway":
            try:
                ipaddress.ip_address(ip.strip("[]"))
            except ValueError:
                raise InvalidArgument(f"HostConfig.ExtraHosts: invalid IP in {item!r}") from None
        out.append(f"{host}:{ip}")
    return out


def _ips(f: Fields, key: str) -> list[str]:
    out = f.str_list(key)
    for ip in out:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidArgument(f"{f.name(key)}: {ip!r} is not an IP address") from None
    return out


def _log_config(f: Fields) -> s.LogConfig:
    kind = f.str("Type") or "json-file"
    if kind not in LOG_DRIVERS:
        raise InvalidArgument(f'error looking up logging plugin {kind}: plugin "{kind}" not found')
    opts = f.str_map("Config")
    if kind != "none":
        log_limits(opts)
    return s.LogConfig("json-file" if kind == "local" else kind, opts)


def _tmpfs(f: Fields) -> dict[str, str]:
    out = f.str_map("Tmpfs")
    for target in out:
        if not target.startswith("/"):
            raise InvalidArgument(f"HostConfig.Tmpfs: {target!r} is not an absolute path")
    return out


def _networks(f: Fields) -> dict[str, s.EndpointSpec]:
    return {net: endpoint_spec(f.sub(net)) for net in f.obj}


def endpoint_spec(ep: Fields) -> s.EndpointSpec:
    """An EndpointSettings object (NetworkingConfig's, or network connect's)."""
    ipam = ep.sub("IPAMConfig")
    ip = ipam.str("IPv4Address")
    if ip:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise InvalidArgument(
                f"{ipam.name('IPv4Address')}: invalid IPv4 address {ip!r}"
            ) from None
    link_local = ipam.str_list("LinkLocalIPs")
    for addr in link_local:
        try:
            ipaddress.IPv4Address(addr)
        except ValueError:
            raise InvalidArgument(
                f"{ipam.name('LinkLocalIPs')}: {addr!r} is not an IPv4 address (no IPv6 here)"
            ) from None
    return s.EndpointSpec(
        aliases=ep.str_list("Aliases"),
        links=[f"{a}:{b or a}" for a, _, b in (x.partition(":") for x in ep.str_list("Links"))],
        ipv4_address=ip,
        driver_opts=ep.str_map("DriverOpts"),
        mac_address=_mac(ep, "MacAddress"),
        link_local_ips=link_local,
    )


# -- exec, update --------------------------------------------------------------------------


def exec_spec(body: dict) -> s.ExecSpec:
    """``POST /containers/{id}/exec``."""
    f = Fields(body)
    cmd = f.command("Cmd")
    if not cmd:
        raise InvalidArgument("No exec command specified")
    workdir = f.str("WorkingDir")
    if workdir and not workdir.startswith("/"):
        raise InvalidArgument(f"WorkingDir {workdir!r} is invalid, it needs to be an absolute path")
    return s.ExecSpec(
        cmd=cmd,
        env=_env(f, "Env"),
        working_dir=workdir,
        user=f.str("User"),
        tty=f.bool("Tty"),
        attach_stdin=f.bool("AttachStdin"),
        attach_stdout=f.bool("AttachStdout", True),
        attach_stderr=f.bool("AttachStderr", True),
        privileged=f.bool("Privileged"),
        console_size=console_size(f),
        detach_keys=detach_keys(f.str("DetachKeys") or f.str("detachKeys")),
    )


def detach_keys(keys: str | None) -> str:
    """Detach keys as given (exec's DetachKeys, docker-py's detachKeys, attach's query),
    checked; "" when not given."""
    if keys:
        detach.parse(keys)
    return keys or ""


def console_size(f: Fields) -> tuple[int, int] | None:
    """``ConsoleSize``: ``[rows, columns]``."""
    value = f.obj.get("ConsoleSize")
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 0xFFFF for v in value
        )
    ):
        raise f.bad("ConsoleSize", "[rows, columns] (two integers)")
    return value[0], value[1]


def update_spec(body: dict) -> s.UpdateSpec:
    """``POST /containers/{id}/update``."""
    f = Fields(body)
    return s.UpdateSpec(
        restart=restart_policy(f.sub("RestartPolicy")) if f.has("RestartPolicy") else None,
        memory=memory(f, "Memory") if f.obj.get("Memory") else None,
        nano_cpus=nano_cpus(f, "NanoCpus") if f.obj.get("NanoCpus") else None,
        cpu_shares=f.int("CpuShares") if f.obj.get("CpuShares") else None,
    )


# -- query parameters ----------------------------------------------------------------------


def filters(text: str | None, allowed: set[str]) -> dict[str, list[str]]:
    """Docker's ``filters`` parameter: ``{"key": ["v", ...]}`` or ``{"key": {"v": true}}``."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidArgument("filters must be JSON") from None
    if not isinstance(data, dict):
        raise InvalidArgument("filters must be a JSON object")
    out = {}
    for key, value in data.items():
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        values = list(value) if isinstance(value, dict) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidArgument(f"filter '{key}' must be a list of strings")
        out[key] = values
    return out


def timestamp(query, key: str) -> float | None:
    """``since``/``until``: unix seconds with an optional fraction (``1700000000.5``)."""
    value = query.get(key)
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except ValueError:
        raise InvalidArgument(f"{key} must be a unix timestamp, not {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise InvalidArgument(f"{key} must be a unix timestamp, not {value!r}")
    return number
