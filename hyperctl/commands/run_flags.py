"""``run``/``create`` flags for mounts, logging, privileges, name resolution, the health
check and attached streams: their click options and their place in the create body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from hyperapi.errors import InvalidArgument
from hyperctl import mounts, opts, runopts
from hyperctl.commands.common import parsed_by

_DURATIONS = {
    "health_interval": "Interval",
    "health_timeout": "Timeout",
    "health_start_period": "StartPeriod",
}


def _each(parse: Callable[[str], Any]) -> Callable:
    """A callback running ``parse`` on every value of a repeatable option."""
    return parsed_by(lambda values: [parse(v) for v in values])


def _list(*names: str, metavar: str, help: str, **kw) -> Callable:
    return click.option(*names, multiple=True, metavar=metavar, help=help, **kw)


OPTIONS = [
    _list(
        "-v",
        "--volume",
        metavar="[SRC:]DST[:OPTS]",
        help="Bind mount a host path, or mount a volume.",
        callback=parsed_by(mounts.parse_volumes),
    ),
    _list(
        "--mount",
        metavar="type=...,dst=...",
        help="Attach a filesystem mount (bind, volume or tmpfs).",
        callback=_each(mounts.parse_mount),
    ),
    _list("--tmpfs", metavar="PATH[:OPTS]", help="Mount a tmpfs directory."),
    click.option("--read-only", is_flag=True, help="Mount the root filesystem read-only."),
    _list("--volumes-from", metavar="CONTAINER[:ro|rw]", help="Mount another's volumes."),
    click.option("--log-driver", help="Logging driver (json-file, local, none)."),
    _list("--log-opt", metavar="K=V", help="Log driver options."),
    click.option("--shm-size", callback=parsed_by(opts.parse_memory), help="Size of /dev/shm."),
    _list("--cap-add", metavar="CAP", help="Add Linux capabilities."),
    _list("--cap-drop", metavar="CAP", help="Drop Linux capabilities."),
    click.option("--privileged", is_flag=True, help="Give extended privileges."),
    _list(
        "--security-opt",
        metavar="OPT",
        help="Security options.",
        callback=parsed_by(runopts.security_opts),
    ),
    _list(
        "--add-host",
        metavar="HOST:IP",
        help="Add a host-to-IP mapping.",
        callback=_each(runopts.extra_host),
    ),
    _list("--dns", metavar="IP", help="DNS servers.", callback=_each(runopts.ip_address)),
    _list(
        "--dns-search",
        metavar="DOMAIN",
        help="DNS search domains.",
        callback=_each(runopts.dns_search),
    ),
    _list("--dns-option", metavar="OPT", help="DNS options."),
    click.option("--init", is_flag=True, help="Run an init inside the container."),
    click.option("--stop-timeout", type=int, help="Seconds to wait before killing on stop."),
    _list("--group-add", metavar="GROUP", help="Additional groups to join."),
    _list("--sysctl", metavar="K=V", help="Sysctl options.", callback=_each(runopts.sysctl)),
    click.option("--domainname", help="Container NIS domain name."),
    click.option(
        "--mac-address", callback=parsed_by(runopts.mac_address), help="Container MAC address."
    ),
    click.option("--health-cmd", help="Command to run to check health."),
    click.option(
        "--health-interval",
        callback=parsed_by(opts.parse_duration),
        help="Time between checks (e.g. 30s).",
    ),
    click.option(
        "--health-timeout", callback=parsed_by(opts.parse_duration), help="Time one check may take."
    ),
    click.option("--health-retries", type=int, help="Consecutive failures to be unhealthy."),
    click.option(
        "--health-start-period",
        callback=parsed_by(opts.parse_duration),
        help="Time to start before failures count.",
    ),
    click.option("--no-healthcheck", is_flag=True, help="Disable the image's health check."),
    _list(
        "-a",
        "--attach",
        metavar="STREAM",
        help="Attach to STDIN, STDOUT or STDERR.",
        callback=parsed_by(runopts.attach_streams),
    ),
]


def apply(p: dict, config: dict) -> None:
    """Put these flags' values into the create body (``config`` and its HostConfig)."""
    _mounts(p, config)
    _host(p, config["HostConfig"])
    _put(config, "Domainname", p["domainname"])
    _put(config, "MacAddress", p["mac_address"])
    if p["stop_timeout"] is not None:
        config["StopTimeout"] = p["stop_timeout"]
    durations = {key: p[flag] for flag, key in _DURATIONS.items()}
    check = runopts.healthcheck(
        p["health_cmd"], durations, p["health_retries"], p["no_healthcheck"]
    )
    _put(config, "Healthcheck", check)
    if p["attach"]:
        _attach(config, p["attach"])


def _mounts(p: dict, config: dict) -> None:
    host = config["HostConfig"]
    binds, volumes = p["volume"] or ([], {})
    _put(config, "Volumes", volumes)
    _put(host, "Binds", binds)
    _put(host, "Mounts", list(p["mount"]))
    _put(host, "Tmpfs", mounts.parse_tmpfs(p["tmpfs"]))
    _put(host, "VolumesFrom", list(p["volumes_from"]))
    _put(host, "ReadonlyRootfs", bool(p["read_only"]))


def _host(p: dict, host: dict) -> None:
    _put(host, "LogConfig", runopts.log_config(p["log_driver"], p["log_opt"]))
    _put(host, "ShmSize", p["shm_size"])
    _put(host, "Privileged", bool(p["privileged"]))
    cap_add, cap_drop = runopts.capabilities(p["cap_add"], p["cap_drop"])
    _put(host, "CapAdd", cap_add)
    _put(host, "CapDrop", cap_drop)
    _put(host, "SecurityOpt", p["security_opt"])
    _put(host, "ExtraHosts", p["add_host"])
    _put(host, "Dns", p["dns"])
    _put(host, "DnsSearch", p["dns_search"])
    _put(host, "DnsOptions", list(p["dns_option"]))
    _put(host, "GroupAdd", list(p["group_add"]))
    _put(host, "Sysctls", dict(p["sysctl"] or ()))
    _put(host, "Init", bool(p["init"]))


def _put(target: dict, key: str, value: Any) -> None:
    """Set a field only when the flag gave it a value, as the docker CLI leaves the rest out."""
    if value:
        target[key] = value


def _attach(config: dict, streams: set[str]) -> None:
    """``-a``: only the named streams are attached (stdin also with ``-i``)."""
    config["AttachStdin"] = "stdin" in streams or config["OpenStdin"]
    config["AttachStdout"] = "stdout" in streams
    config["AttachStderr"] = "stderr" in streams
    config["StdinOnce"] = config["OpenStdin"] and config["AttachStdin"]


def check_detach(p: dict, detach: bool) -> None:
    """``-a`` and ``-d`` exclude each other."""
    if detach and p["attach"]:
        raise InvalidArgument("conflicting options: cannot specify both --attach and --detach")
