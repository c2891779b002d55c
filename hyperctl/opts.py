"""Parsing of Docker-style option values (memory sizes, cpus, restart policies, env)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from hyperapi.errors import InvalidArgument
from hyperapi.portspec import parse_ports
from hyperapi.units import parse_size


def parse_memory(text: str) -> int:
    """``-m 256m``: Docker's RAMInBytes (binary units)."""
    return parse_size(text)


def parse_cpus(text: str | float) -> int:
    """``--cpus 1.5`` → NanoCpus (1500000000)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InvalidArgument(f"not a number: '{text}'") from None
    if value < 0 or value != value or value == float("inf"):
        raise InvalidArgument(f"must not be negative: '{text}'")
    return int(round(value * 1e9))


RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")


def parse_restart(text: str) -> dict:
    """``no|on-failure[:N]|always|unless-stopped`` → ``{Name, MaximumRetryCount}``."""
    name, sep, count = (text or "no").partition(":")
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy '{text}'")
    retries = 0
    if sep:
        if name != "on-failure":
            raise InvalidArgument(
                f"maximum retry count cannot be used with restart policy '{name}'"
            )
        try:
            retries = int(count)
        except ValueError:
            raise InvalidArgument(f"maximum retry count must be an integer: '{count}'") from None
        if retries < 0:
            raise InvalidArgument("maximum retry count cannot be negative")
    return {"Name": name, "MaximumRetryCount": retries}


def parse_env(items: Iterable[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """``K=V`` as is; a bare ``K`` takes the local value (dropped when unset), like Docker."""
    env = os.environ if environ is None else environ
    out = []
    for item in items:
        if not item or item.startswith("="):
            raise InvalidArgument(f"invalid environment variable: {item!r}")
        if "=" in item:
            out.append(item)
        elif item in env:
            out.append(f"{item}={env[item]}")
    return out


def read_env_file(path: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Lines of an env file: ``K=V`` or ``K``; blank lines and ``#`` comments skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InvalidArgument(f"cannot read env file {path}: {e.strerror or e}") from None
    items = []
    for line in lines:
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        if "=" not in stripped:
            stripped = stripped.strip()
            if any(c.isspace() for c in stripped):
                raise InvalidArgument(f"variable '{stripped}' contains whitespaces")
        items.append(stripped)
    return parse_env(items, environ)


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    """``k=v`` (or ``k`` → empty value) into a dict."""
    labels = {}
    for item in items:
        k, _, v = item.partition("=")
        if not k:
            raise InvalidArgument(f"invalid label: {item!r}")
        labels[k] = v
    return labels


def parse_filters(items: Iterable[str]) -> dict[str, list[str]]:
    """``--filter key=value`` (repeatable) → ``{"key": ["value", ...]}``."""
    filters: dict[str, list[str]] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(k.strip().lower(), []).append(v)
    return filters


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_DATE_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2})(?::(\d{2})(?::(\d{2})(\.\d{1,9})?)?)?)?"
    r"(Z|z|[+-]\d{2}:\d{2})?"
)


def _duration(text: str) -> float | None:
    """Seconds of a Go duration (``10m``, ``1h30m``, ``1.5s``), or None."""
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return total if text and pos == len(text) else None


def _date(text: str) -> float | None:
    """Unix seconds of an RFC 3339 time or a shorter form of it (``2024-01-02``,
    ``2024-01-02T15:04``); local time when it has no zone, as Docker's."""
    m = _DATE_RE.fullmatch(text)
    if not m:
        return None
    y, mo, d, h, mi, sec, frac, zone = m.groups()
    parts = [int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(sec or 0)]
    try:
        stamp = datetime(*parts)
    except ValueError:
        return None
    if zone is None:
        seconds = time.mktime(stamp.timetuple())
    else:
        offset = 0 if zone in "Zz" else int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        seconds = stamp.replace(tzinfo=UTC).timestamp()
        seconds -= offset if zone[0] != "-" else -offset
    return seconds + (float(frac) if frac else 0.0)


def parse_time(text: str, flag: str = "--since", now: float | None = None) -> float:
    """Docker's timestamps for ``--since``/``--until``/``until=``: a Go duration before now
    (``10m``), unix seconds (``1700000000.5``), or an RFC 3339 date/time (zone optional)."""
    value = (text or "").strip()
    seconds = _duration(value) if value != "0" else None
    if seconds is not None:
        return (time.time() if now is None else now) - seconds
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    stamp = _date(value)
    if stamp is None:
        raise InvalidArgument(
            f"invalid value for {flag}: {text!r} (a duration like 10m, unix seconds or RFC 3339)"
        )
    return stamp


def split_repo_tag(ref: str) -> tuple[str, str | None]:
    """``repo[:tag]`` (ignores the colon of a registry port; keeps digests whole)."""
    if "@" in ref:
        return ref, None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, None


def _port_range(text: str, spec: str) -> list[int]:
    first, _, last = text.partition("-")
    lo, hi = int(first), int(last or first)
    if not (0 < lo <= hi <= 65535):
        raise InvalidArgument(f"invalid port range in '{spec}'")
    return list(range(lo, hi + 1))


def parse_publish(specs: Iterable[str]) -> tuple[dict, dict]:
    """``-p [ip:][hostPort:]containerPort[/proto]`` (ranges too) → (ExposedPorts, PortBindings)."""
    exposed: dict[str, dict] = {}
    bindings: dict[str, list[dict]] = {}
    for b in parse_ports(specs):
        key = f"{b.container_port}/{b.proto}"
        exposed[key] = {}
        host_ip = "" if b.host_ip == "0.0.0.0" else b.host_ip
        host_port = str(b.host_port) if b.host_port else ""
        bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": host_port})
    return exposed, bindings


def parse_expose(specs: Iterable[str]) -> dict:
    """``--expose 80[/tcp]`` (ranges too) → ExposedPorts."""
    out: dict[str, dict] = {}
    for spec in specs:
        port, _, proto = spec.partition("/")
        if proto not in ("", "tcp", "udp") or not re.fullmatch(r"\d+(-\d+)?", port):
            raise InvalidArgument(f"invalid expose spec '{spec}'")
        for p in _port_range(port, spec):
            out[f"{p}/{proto or 'tcp'}"] = {}
    return out
