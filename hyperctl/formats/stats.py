"""``stats``: a row of CPU, memory, network and block I/O figures from a stats sample,
computed as the docker CLI does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hyperctl.formatting import bytes_size, format_listing, human_size, short_id

STATS_HEADERS = {
    "Container": "CONTAINER",
    "ID": "CONTAINER ID",
    "Name": "NAME",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}
STATS_DEFAULT_TABLE = (
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}"
    "\t{{.BlockIO}}\t{{.PIDs}}"
)


def cpu_percent(sample: Mapping[str, Any]) -> float:
    """The VM's CPU use between the sample and its predecessor, 100% per CPU."""
    cpu, pre = sample.get("cpu_stats") or {}, sample.get("precpu_stats") or {}
    cpu_delta = _usage(cpu) - _usage(pre)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * cpus * 100.0
    return 0.0


def _usage(cpu: Mapping[str, Any]) -> int:
    return (cpu.get("cpu_usage") or {}).get("total_usage") or 0


def memory_usage(sample: Mapping[str, Any]) -> tuple[float, float]:
    """(used, limit) bytes; the page cache's inactive files do not count as used."""
    mem = sample.get("memory_stats") or {}
    usage, stats = mem.get("usage") or 0, mem.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        if key in stats and stats[key] < usage:
            return float(usage - stats[key]), float(mem.get("limit") or 0)
    return float(usage), float(mem.get("limit") or 0)


def network_io(sample: Mapping[str, Any]) -> tuple[int, int]:
    """Bytes received and sent, over every interface."""
    nets = (sample.get("networks") or {}).values()
    return sum(n.get("rx_bytes", 0) for n in nets), sum(n.get("tx_bytes", 0) for n in nets)


def block_io(sample: Mapping[str, Any]) -> tuple[int, int]:
    """Bytes read and written on the VM's disks."""
    entries = (sample.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    read = sum(e.get("value", 0) for e in entries if str(e.get("op", "")).lower() == "read")
    written = sum(e.get("value", 0) for e in entries if str(e.get("op", "")).lower() == "write")
    return read, written


def stats_row(
    container: str, sample: Mapping[str, Any] | None, trunc: bool = True, ident: str = ""
) -> dict:
    """The fields a ``stats --format`` template sees; ``--`` figures without a sample."""
    ident = (sample or {}).get("id") or ident or container
    row = {"Container": container, "ID": short_id(ident, trunc)}
    if sample is None:
        name = ""
        figures = {"CPUPerc": "--", "MemUsage": "-- / --", "MemPerc": "--", "NetIO": "--"}
        figures.update(BlockIO="--", PIDs="--")
    else:
        name = str(sample.get("name") or "").lstrip("/")
        used, limit = memory_usage(sample)
        rx, tx = network_io(sample)
        read, written = block_io(sample)
        figures = {
            "CPUPerc": f"{cpu_percent(sample):.2f}%",
            "MemUsage": f"{bytes_size(used)} / {bytes_size(limit)}",
            "MemPerc": f"{used / limit * 100 if limit else 0.0:.2f}%",
            "NetIO": f"{human_size(rx)} / {human_size(tx)}",
            "BlockIO": f"{human_size(read)} / {human_size(written)}",
            "PIDs": str((sample.get("pids_stats") or {}).get("current") or 0),
        }
    return {**row, "Name": name or "--", **figures}


def format_stats(rows: Sequence[Mapping[str, Any]], fmt: str | None = None) -> str:
    """The ``stats`` table (or json lines, or a template's lines)."""
    return format_listing(rows, fmt, STATS_HEADERS, STATS_DEFAULT_TABLE)
