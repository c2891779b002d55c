"""Samples of a container's VM counters for ``docker stats``: the host's view of the VM
(QEMU's CPU time and memory, its disks and NIC), which is what the container costs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hyperd.vm.stats import VMStats

from .state import now_rfc3339

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def system_cpu_ns() -> int:
    """Total CPU time of the host in ns (Docker's system_cpu_usage, from /proc/stat)."""
    with open("/proc/stat") as f:
        fields_ = f.readline().split()[1:8]
    return sum(int(x) for x in fields_) * _TICK_NS


@dataclass
class Sample:
    """One reading."""

    read: str
    cpu_time_ns: int = 0
    system_ns: int = 0
    cpus: int = 0
    memory_used: int = 0
    memory_limit: int = 0
    block_read: int = 0
    block_write: int = 0
    networks: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    @classmethod
    def idle(cls, limit: int) -> Sample:
        """A container that does not run: zeros, as Docker reports."""
        return cls(now_rfc3339(), memory_limit=limit)

    @classmethod
    def of(cls, vm: VMStats, limit: int) -> Sample:
        """A reading of a sandbox's VM."""
        return cls(
            read=now_rfc3339(),
            cpu_time_ns=vm.cpu_time_ns,
            system_ns=system_cpu_ns(),
            cpus=os.cpu_count() or 1,
            memory_used=vm.rss_bytes,
            memory_limit=limit,
            block_read=sum(d.rd_bytes for d in vm.disks.values()),
            block_write=sum(d.wr_bytes for d in vm.disks.values()),
            networks={
                f"eth{i}": (n.rx_bytes, n.rx_packets, n.tx_bytes, n.tx_packets)
                for i, n in enumerate(vm.nics.values())
            },
        )
