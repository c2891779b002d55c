"""Values of ``run``/``create``'s flags checked as the docker CLI checks them: capabilities,
security options, hosts and DNS, sysctls, logging, the health check, attached streams."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable

from hyperapi.errors import InvalidArgument

ALL_CAPS = "ALL"
STREAMS = ("stdin", "stdout", "stderr")
SYSCTLS = {
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
}
SYSCTL_PREFIXES = ("net.", "fs.mqueue.")
_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9]+(?:-*[a-zA-Z0-9])*)"
_DOMAIN_RE = re.compile(rf"({_LABEL}(?:\.{_LABEL})*)\.?\s*")
_MAC_RE = re.compile(r"[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}")


def _capability(name: str) -> str:
    cap = name.strip().upper()
    return cap if cap == ALL_CAPS or cap.startswith("CAP_") else f"CAP_{cap}"


def capabilities(add: Iterable[str], drop: Iterable[str]) -> tuple[list[str], list[str]]:
    """``--cap-add``/``--cap-drop`` → (CapAdd, CapDrop): ``CAP_`` names, sorted, deduplicated;
    ``ALL`` trumps the rest of its list and an added capability is not also dropped."""
    adds = {_capability(c) for c in add}
    drops = {_capability(c) for c in drop}
    if ALL_CAPS in adds:
        adds = {ALL_CAPS}
    if ALL_CAPS in drops:
        drops = {ALL_CAPS}
    return sorted(adds), sorted(drops - adds)


def security_opts(items: Iterable[str]) -> list[str]:
    """``--security-opt``: ``key=value`` (or ``key:value``, or ``no-new-privileges``); a
    seccomp profile given as a file is sent as its compacted JSON, as Docker's CLI does."""
    out = []
    for opt in items:
        key, sep, value = opt.partition("=")
        if not sep and key != "no-new-privileges":
            key, sep, value = opt.partition(":")
        if (not sep or not value) and key != "no-new-privileges":
            raise InvalidArgument(f'Invalid --security-opt: "{opt}"')
        if key == "seccomp" and value not in ("builtin", "unconfined"):
            opt = "seccomp=" + _seccomp_profile(value)
        out.append(opt)
    return out


def _seccomp_profile(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            profile = json.load(f)
    except OSError as e:
        raise InvalidArgument(f"opening seccomp profile ({path}) failed: {e.strerror}") from None
    except ValueError as e:
        raise InvalidArgument(f"compacting json for seccomp profile ({path}) failed: {e}") from None
    return json.dumps(profile, separators=(",", ":"))


def ip_address(text: str) -> str:
    """An IPv4 or IPv6 address (``--dns``), in its canonical form."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise InvalidArgument(f"IP address is not correctly formatted: {text}") from None


def extra_host(text: str) -> str:
    """``--add-host HOST:IP`` (or ``HOST=IP``, ``[v6]``, ``host-gateway``) → ``HOST:IP``."""
    host, sep, ip = text.partition("=")
    if not sep:
        host, sep, ip = text.partition(":")
    if not sep or not host or ":" in host:
        raise InvalidArgument(f'bad format for add-host: "{text}"')
    if ip != "host-gateway":
        if len(ip) > 2 and ip[0] == "[" and ip[-1] == "]":
            ip = ip[1:-1]
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidArgument(f'invalid IP address in add-host: "{ip}"') from None
    return f"{host}:{ip}"


def dns_search(text: str) -> str:
    """``--dns-search``: a domain name, or ``.``."""
    value = text.strip(" ")
    if value == ".":
        return value
    m = _DOMAIN_RE.fullmatch(value)
    if not re.search(r"[a-zA-Z]", value) or not m or len(m.group(1)) >= 255:
        raise InvalidArgument(f"{text} is not a valid domain")
    return m.group(1)


def sysctl(text: str) -> tuple[str, str]:
    """``--sysctl KEY=VALUE`` for a namespaced sysctl (the ones Docker allows)."""
    key, sep, value = text.partition("=")
    if not sep or not (key in SYSCTLS or key.startswith(SYSCTL_PREFIXES)):
        raise InvalidArgument(f"sysctl '{text}' is not allowed")
    return key, value


def mac_address(text: str) -> str:
    """``--mac-address``: six bytes, ``:`` or ``-`` separated."""
    if not _MAC_RE.fullmatch(text):
        raise InvalidArgument(f"{text} is not a valid mac address")
    return text


def log_config(driver: str | None, options: Iterable[str]) -> dict | None:
    """``--log-driver`` and ``--log-opt k=v`` → HostConfig.LogConfig (None when neither)."""
    config = {}
    for item in options:
        key, _, value = item.partition("=")
        config[key] = value
    if driver == "none" and config:
        raise InvalidArgument(f"invalid logging opts for driver {driver}")
    if driver is None and not config:
        return None
    return {"Type": driver or "", "Config": config}


def healthcheck(
    cmd: str | None,
    durations: dict[str, int | None],
    retries: int | None,
    disabled: bool,
) -> dict | None:
    """``--health-*`` and ``--no-healthcheck`` → Config.Healthcheck (None when none given).
    ``durations`` maps Interval, Timeout and StartPeriod to nanoseconds."""
    given = {k: v for k, v in durations.items() if v}
    if disabled:
        if cmd or given or retries:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not (cmd or given or retries):
        return None
    for key, value in given.items():
        if value < 0:
            raise InvalidArgument(f"--health-{_flag(key)} cannot be negative")
    if retries is not None and retries < 0:
        raise InvalidArgument("--health-retries cannot be negative")
    check: dict = {"Test": ["CMD-SHELL", cmd]} if cmd else {}
    check.update(given)
    if retries:
        check["Retries"] = retries
    return check


def _flag(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"-\1", key).lower()


def attach_streams(items: Iterable[str]) -> set[str]:
    """``-a/--attach``: stdin, stdout, stderr (any case)."""
    out = set()
    for item in items:
        if item.lower() not in STREAMS:
            raise InvalidArgument("valid streams are STDIN, STDOUT and STDERR")
        out.add(item.lower())
    return out
