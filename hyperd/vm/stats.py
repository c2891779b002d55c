"""A VM's resource counters (`docker stats`): CPU, memory, disks and NICs of its QEMU.

Conversion only: libvirt's typed stats record (keys such as ``cpu.time``,
``block.0.wr.bytes``) and the domain's live devices become one small dataclass, with disks
keyed by serial and NICs by MAC, as the rest of hyper names them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .domain import Devices


@dataclass
class DiskStats:
    """Bytes and requests a guest read from and wrote to one disk."""

    target: str
    rd_bytes: int = 0
    rd_ops: int = 0
    wr_bytes: int = 0
    wr_ops: int = 0


@dataclass
class NicStats:
    """Bytes and packets through one NIC, as the guest sees them (rx: into the guest)."""

    tap: str
    rx_bytes: int = 0
    rx_packets: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0


@dataclass
class VMStats:
    """One sample of a VM's counters; ``pid`` is None when QEMU is not on this host."""

    pid: int | None
    cpu_time_ns: int
    rss_bytes: int  # resident memory of the QEMU process
    guest_memory_bytes: int  # RAM the guest has now
    disks: dict[str, DiskStats] = field(default_factory=dict)  # by serial
    nics: dict[str, NicStats] = field(default_factory=dict)  # by MAC


# libvirt reports these NIC kinds from the host's side of the tap (its rx is the guest's
# tx) and the others (bridge, network) from the guest's side: virDomainNetTypeSharesHostView.
_HOST_VIEW = ("ethernet", "direct")


def from_record(record: dict, devices: Devices, pid: int | None) -> VMStats:
    """A libvirt all-domain-stats record (cpu, balloon, block, interface groups) as VMStats."""
    serials = {x.target: x.serial for x in devices.disks}
    nic_of = {x.tap: x for x in devices.interfaces}
    disks, nics = {}, {}
    for i in range(record.get("block.count", 0)):
        key = f"block.{i}"
        target = record.get(f"{key}.name", "")
        disks[serials.get(target) or target] = DiskStats(
            target,
            record.get(f"{key}.rd.bytes", 0),
            record.get(f"{key}.rd.reqs", 0),
            record.get(f"{key}.wr.bytes", 0),
            record.get(f"{key}.wr.reqs", 0),
        )
    for i in range(record.get("net.count", 0)):
        key = f"net.{i}"
        tap = record.get(f"{key}.name", "")
        nic = nic_of.get(tap)
        rx, tx = f"{key}.rx", f"{key}.tx"
        if nic is not None and nic.kind in _HOST_VIEW:
            rx, tx = tx, rx
        nics[nic.mac.lower() if nic else tap] = NicStats(
            tap,
            record.get(f"{rx}.bytes", 0),
            record.get(f"{rx}.pkts", 0),
            record.get(f"{tx}.bytes", 0),
            record.get(f"{tx}.pkts", 0),
        )
    return VMStats(
        pid=pid,
        cpu_time_ns=record.get("cpu.time", 0),
        rss_bytes=record.get("balloon.rss", 0) * 1024,
        guest_memory_bytes=record.get("balloon.current", 0) * 1024,
        disks=disks,
        nics=nics,
    )


_pids: dict[str, int] = {}


def emulator_pid(uuid: str, proc: Path = Path("/proc")) -> int | None:
    """The pid of the QEMU process running the domain ``uuid`` (libvirt passes ``-uuid``)."""
    cached = _pids.get(uuid)
    if cached is not None and _runs(proc / str(cached), uuid):
        return cached
    _pids.pop(uuid, None)
    for entry in os.scandir(proc):
        if entry.name.isdigit() and _runs(Path(entry.path), uuid):
            _pids[uuid] = int(entry.name)
            return _pids[uuid]
    return None


def _runs(pid_dir: Path, uuid: str) -> bool:
    try:
        args = (pid_dir / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"-uuid" in args and uuid.encode() in args
