"""Which accelerator can run our VMs: hardware KVM, or QEMU's TCG.

`/dev/kvm` alone proves nothing: the PVM module (`kvm_pvm`) also provides it, and a
normal guest kernel barely moves under it. Hardware KVM is `kvm_intel` or `kvm_amd`.
"""

from __future__ import annotations

import os
from pathlib import Path

from hyperd.errors import InvalidArgument

ACCELS = ("auto", "kvm", "tcg")


def hardware_kvm_usable(sys_module: Path = Path("/sys/module"), dev: str = "/dev/kvm") -> bool:
    """True when /dev/kvm is openable and backed by VT-x (kvm_intel) or AMD-V (kvm_amd)."""
    if not any((sys_module / mod).is_dir() for mod in ("kvm_intel", "kvm_amd")):
        return False
    return os.access(dev, os.R_OK | os.W_OK)


def choose(setting: str = "auto", kvm_usable: bool | None = None) -> str:
    """Resolve the config's accel setting to 'kvm' or 'tcg'."""
    if setting not in ACCELS:
        raise InvalidArgument(f"accel must be one of {', '.join(ACCELS)}, not {setting!r}")
    if setting != "auto":
        return setting
    if kvm_usable is None:
        kvm_usable = hardware_kvm_usable()
    return "kvm" if kvm_usable else "tcg"


def domain_type(accel_name: str) -> str:
    """libvirt's QEMU-driver domain type for an accelerator: kvm, or qemu for TCG."""
    return {"kvm": "kvm", "tcg": "qemu"}[accel_name]
