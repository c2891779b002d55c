"""Policy and defaults for hyper's VMs: turns a VMSpec into a domain model.

Everything hyper decides about a VM's shape lives here (machine type, buses, CPU model,
kernel command line, TCG cache cap, switched-off default devices); ``domain.py`` only
converts. Three hypervisors share the model: ``kvm`` and ``qemu`` (TCG) through the
QEMU driver, and ``xen`` through libxl (PVH guest, PV disks and console).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

from hyperd.agent import protocol

from . import domain as d

DEFAULT_VCPUS = 1
DEFAULT_MEMORY_MIB = 256
# A TCG guest's translation cache otherwise defaults to ~1 GiB of host memory per VM.
DEFAULT_TB_CACHE_MIB = 32
MACHINE = "pc"
# quiet + panic reboots (and on_reboot=destroy ends the domain); reboot=t is the fastest
# way out. PCI scan of bus 0 only: our devices all sit there.
KERNEL_ARGS = "quiet panic=-1 reboot=t pci=lastbus=0"
METADATA_NS = "https://hyper.dev/xmlns/domain/1"


@dataclass
class DiskSpec:
    """A disk file and the serial the agent finds it by."""

    path: str
    serial: str
    readonly: bool = False


@dataclass
class NicSpec:
    """A NIC on a host tap (or bridge)."""

    mac: str
    tap: str = ""
    bridge: str = ""


@dataclass
class VMSpec:
    """What a VM needs, independent of the hypervisor."""

    name: str
    uuid: str
    kernel: str
    initrd: str
    control_socket: str
    stream_socket: str
    console_log: str
    vcpus: int = DEFAULT_VCPUS
    memory_mib: int = DEFAULT_MEMORY_MIB
    disks: list[DiskSpec] = field(default_factory=list)
    nics: list[NicSpec] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)


def design(spec: VMSpec, hypervisor: str, tb_cache_mib: int = DEFAULT_TB_CACHE_MIB) -> d.Domain:
    """Build the domain model for ``spec`` on ``kvm``, ``qemu`` (TCG) or ``xen``."""
    if hypervisor == "xen":
        return _xen(spec)
    if hypervisor not in ("kvm", "qemu"):
        raise ValueError(f"unknown hypervisor {hypervisor!r}")
    tcg = hypervisor == "qemu"
    return d.Domain(
        type=hypervisor,
        name=spec.name,
        uuid=spec.uuid,
        memory_mib=spec.memory_mib,
        vcpus=spec.vcpus,
        metadata=spec.metadata,
        metadata_ns=METADATA_NS,
        os=d.OSBoot("hvm", spec.kernel, spec.initrd, f"console=ttyS0 {KERNEL_ARGS}", MACHINE),
        features=d.Features(acpi=True, tcg_tb_cache_mib=tb_cache_mib if tcg else 0),
        # -cpu host fails under TCG; 'maximum' gives every feature TCG can emulate.
        cpu=d.CPU("maximum" if tcg else "host-passthrough"),
        devices=d.Devices(
            disks=[
                d.Disk(x.path, _dev("vd", i), "virtio", x.serial, x.readonly, driver="qemu")
                for i, x in enumerate(spec.disks)
            ],
            channels=_channels(spec, "virtio"),
            interfaces=[_nic(n) for n in spec.nics],
            serial=d.Serial(spec.console_log, "isa-serial"),
            # Entropy from the start: without it the guest CRNG takes ~1 s to get ready
            # under TCG and early getrandom() callers (the workload's) wait for it.
            rng=d.Rng(),
            no_usb=True,
            no_memballoon=True,
        ),
    )


def _xen(spec: VMSpec) -> d.Domain:
    """A PVH guest through libxl: PV disks, PV console channels, hvc0 console."""
    return d.Domain(
        type="xen",
        name=spec.name,
        uuid=spec.uuid,
        memory_mib=spec.memory_mib,
        vcpus=spec.vcpus,
        metadata=spec.metadata,
        metadata_ns=METADATA_NS,
        os=d.OSBoot("xenpvh", spec.kernel, spec.initrd, f"console=hvc0 {KERNEL_ARGS}"),
        features=d.Features(acpi=False),
        devices=d.Devices(
            disks=[
                d.Disk(x.path, _dev("xvd", i), "xen", x.serial, x.readonly)
                for i, x in enumerate(spec.disks)
            ],
            channels=_channels(spec, "xen"),
            interfaces=[_nic(n, model="") for n in spec.nics],
        ),
    )


def _channels(spec: VMSpec, target_type: str) -> list[d.Channel]:
    return [
        d.Channel(spec.control_socket, protocol.CONTROL_PORT, target_type),
        d.Channel(spec.stream_socket, protocol.STREAM_PORT, target_type),
    ]


def _nic(nic: NicSpec, model: str = "virtio") -> d.Interface:
    if nic.bridge:
        return d.Interface(nic.mac, "bridge", bridge=nic.bridge, model=model)
    return d.Interface(nic.mac, "ethernet", tap=nic.tap, model=model)


def _dev(prefix: str, index: int) -> str:
    """vda, vdb, ... vdz, vdaa (libvirt's naming)."""
    letters = string.ascii_lowercase
    name = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        name = letters[rem] + name
    return prefix + name
