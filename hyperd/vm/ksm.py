"""Kernel samepage merging (KSM): pages that many VMs hold alike, kept once by the host.

QEMU marks every guest's RAM mergeable (its default); the kernel merges only while
``/sys/kernel/mm/ksm/run`` is 1. hyperd turns it on at start when the config says
``ksm = true`` (off by default): scanning costs host CPU, and pages merged across VMs let
one guest time another's memory (a known side channel between tenants), so a host trades
that isolation for density knowingly. Idle busybox containers measured 89 MiB PSS each
without KSM and 57 MiB with it (bench/density.py). hyperd leaves KSM on when it exits: its
VMs outlive it (live restore).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

SYSFS = Path("/sys/kernel/mm/ksm")
# ~200 MB/s of guest memory scanned: 50 idle VMs merge within a minute or two.
SCAN_RATE = {"pages_to_scan": "1000", "sleep_millisecs": "20"}


def enable(sysfs: Path = SYSFS) -> str:
    """Start merging; a host already running KSM keeps its own scan rate. Returns what was
    done, for the log; raises OSError when the settings cannot be written."""
    run = sysfs / "run"
    if not run.exists():
        return f"no KSM in this kernel ({sysfs} missing): memory is not merged"
    if run.read_text().strip() == "1":
        return "KSM already on: memory of VMs is merged at the host's scan rate"
    saved = {key: (sysfs / key).read_text().strip() for key in SCAN_RATE}
    try:
        for key, value in SCAN_RATE.items():
            (sysfs / key).write_text(value)
        run.write_text("1")
    except OSError:
        for key, value in saved.items():  # the host's scan rate back, KSM still off
            with contextlib.suppress(OSError):
                (sysfs / key).write_text(value)
        raise
    rate = f"{SCAN_RATE['pages_to_scan']} pages / {SCAN_RATE['sleep_millisecs']} ms"
    return f"KSM turned on: memory of VMs is merged ({rate})"
