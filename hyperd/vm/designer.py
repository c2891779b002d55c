"""Policy and defaults for hyper's VMs: turns a VMSpec into a domain model.

Everything hyper decides about a VM's shape lives here (machine type, buses, CPU model,
kernel command line, TCG cache cap, switched-off default devices); ``domain.py`` only
converts. Three hypervisors share the model: ``kvm`` and ``qemu`` (TCG) through the
QEMU driver, and ``xen`` through libxl (PVH guest, PV disks and console).

Disks and NICs can be added to and removed from a running VM (``disk``, ``nic``: PCI
hot-plug, which the guest kernel sees through ACPI). 9p shares cannot: libvirt does not
hot-plug ``<filesystem>`` on QEMU, so a VM's shares are all in its boot XML (``VMSpec.shares``).
"""

from __future__ import annotations

import string
from collections.abc import Collection
from dataclasses import dataclass, field

from hyperd.agent import protocol
from hyperd.errors import InvalidArgument

from . import domain as d

DEFAULT_VCPUS = 1
DEFAULT_MEMORY_MIB = 256
# A TCG guest's translation cache otherwise defaults to ~1 GiB of host memory per VM.
DEFAULT_TB_CACHE_MIB = 32
MACHINE = "pc"
# quiet + panic reboots (and on_reboot=destroy ends the domain); reboot=t is the fastest
# way out. PCI scan of bus 0 only: our devices all sit there. no_timer_check: the boot-time
# check that the IO-APIC timer ticks within a busy loop fails, and panics, when many TCG
# guests share few host cores (the timer is emulated and can be late, never broken).
# acpi=noirq: legacy IRQs routed from the BIOS table, not by evaluating the ACPI PCI link
# objects, which costs ~0.35 s per link (1.3-1.5 s a boot) under TCG; virtio devices use
# MSI-X anyway, and ACPI still powers off and announces hot-plugged slots.
KERNEL_ARGS = "quiet panic=-1 reboot=t pci=lastbus=0 no_timer_check acpi=noirq"
METADATA_NS = "https://hyper.dev/xmlns/domain/1"
# Host page cache for every disk: it honours the guest's flushes (so fsync in a container
# is durable), works on any host filesystem (cache=none needs O_DIRECT, which tmpfs lacks),
# and VMs sharing one read-only image disk share one cached copy of it.
DISK_CACHE = "writeback"
# 9p shares: files keep their real owners and modes on the host, as Docker bind mounts do
# (root in the container writes root-owned files). QEMU then acts with the guest's ids, so
# it has to run as root: domains with shares get a DAC label of root. The others run as a
# user of their own when the VM has one (VMSpec.user, see hyperd.vm.users), else as
# libvirt's shared QEMU user.
SHARE_ACCESSMODE = "passthrough"
SHARE_EMULATOR_LABEL = "+0:+0"
# The largest msize Linux 6.1's virtio transport takes (PAGE_SIZE * (128 - 3)); the
# kernel's default (8 KiB) makes every large read or write many round trips.
SHARE_MSIZE = 512000
# cache=mmap: no caching beyond what shared writable mmap needs (sqlite, ...), so edits
# made on the host show up in the guest at once. posixacl: the guest enforces the host
# files' ACLs, as the host kernel does for a Docker bind mount. (QEMU's passthrough only
# forwards user.* and ACL xattrs: security.* ones, file capabilities among them, do not
# cross a share.)
# The guest's 9p mount options; the agent adds trans=virtio,version=9p2000.L itself and a
# read-only share is mounted read-only by the mount's own flag.
SHARE_MOUNT_OPTIONS = f"msize={SHARE_MSIZE},cache=mmap,access=client,posixacl"
# virtio-blk hands the guest at most 20 bytes of serial; a longer one would be cut and the
# agent would never find the disk.
MAX_SERIAL = 20
# The id of the RAM object of a VM whose RAM is a file: a template's state names its RAM
# by it, so its clones must use the same.
RAM_BACKEND = "hyper.ram"


@dataclass
class DiskSpec:
    """A disk file and the serial the agent finds it by."""

    path: str
    serial: str
    readonly: bool = False
    # A writable disk never used yet (as made): a pool VM's blank disk can stand in for it.
    blank: bool = False
    # A read-only disk any number of VMs may hold (an image's root): a pool VM may boot
    # with it already attached (hyperd.sandbox.disks).
    shared: bool = False


@dataclass
class NicSpec:
    """A NIC on a host tap (or bridge)."""

    mac: str
    tap: str = ""
    bridge: str = ""


@dataclass
class ShareSpec:
    """A host directory for the guest (a bind mount); the guest mounts it by tag."""

    path: str
    tag: str
    readonly: bool = False


@dataclass
class RamFile:
    """Guest RAM in a file: a template's (``shared``: its writes reach the file), or a
    clone's private copy-on-write view of a template's file."""

    path: str
    shared: bool


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
    shares: list[ShareSpec] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    # QEMU's own (uid, gid), ignored with shares; None: libvirt's shared user
    user: tuple[int, int] | None = None
    ram_file: RamFile | None = None  # kvm/qemu only
    # QEMU waits for a saved state (``Domain.load_state``) instead of booting
    incoming: bool = False


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
            disks=_disks(spec, hypervisor),
            filesystems=[share(x) for x in spec.shares],
            channels=_channels(spec, "virtio"),
            interfaces=[nic(n, hypervisor) for n in spec.nics],
            serial=d.Serial(spec.console_log, "isa-serial"),
            # Entropy from the start: without it the guest CRNG takes ~1 s to get ready
            # under TCG and early getrandom() callers (the workload's) wait for it.
            rng=d.Rng(),
            no_usb=True,
            no_memballoon=True,
        ),
        seclabels=_seclabels(spec),
        qemu_args=_qemu_args(spec),
    )


def _qemu_args(spec: VMSpec) -> list[str]:
    """What libvirt 9 cannot say: guest RAM in a file of our choosing (libvirt's file
    backing names its own per-domain file), and a QEMU that waits for a saved state.
    libvirt's own RAM object stays on its command line, unused and never touched."""
    args = []
    if spec.ram_file is not None:
        path = spec.ram_file.path.replace(",", ",,")
        share = "on" if spec.ram_file.shared else "off"
        args += [
            "-object",
            f"memory-backend-file,id={RAM_BACKEND},mem-path={path},share={share},"
            f"size={spec.memory_mib}M",
            "-machine",
            f"memory-backend={RAM_BACKEND}",
        ]
    if spec.incoming:
        args += ["-incoming", "defer"]
    return args


def _seclabels(spec: VMSpec) -> list[d.SecLabel]:
    """QEMU as root for 9p shares; else as the VM's own user, with libvirt relabelling
    nothing (it would chown the shared kernel and initrd to each VM's user and refuse the
    second VM): the daemon grants that user its disks itself (hyperd.vm.users)."""
    if spec.shares:
        return [d.SecLabel("dac", SHARE_EMULATOR_LABEL)]
    if spec.user is not None:
        return [d.SecLabel("dac", "+{}:+{}".format(*spec.user))]
    return []


def own_user(domain_xml: str) -> tuple[int, int] | None:
    """The (uid, gid) a running domain's QEMU was given as its own user (None: libvirt's
    shared user, or root for 9p shares)."""
    for label in d.SecLabel.parse(domain_xml):
        if label.model != "dac" or label.type != "static" or label.relabel:
            continue
        uid, _, gid = label.label.partition(":")
        if uid.startswith("+") and gid.startswith("+") and label.label != SHARE_EMULATOR_LABEL:
            try:
                return int(uid[1:]), int(gid[1:])
            except ValueError:
                return None
    return None


def _xen(spec: VMSpec) -> d.Domain:
    """A PVH guest through libxl: PV disks, PV console channels, hvc0 console."""
    if spec.shares:
        raise ValueError("9p shares are only designed for QEMU (kvm, qemu), not xen")
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
            disks=_disks(spec, "xen"),
            channels=_channels(spec, "xen"),
            interfaces=[nic(n, "xen") for n in spec.nics],
        ),
    )


def _channels(spec: VMSpec, target_type: str) -> list[d.Channel]:
    return [
        d.Channel(spec.control_socket, protocol.CONTROL_PORT, target_type),
        d.Channel(spec.stream_socket, protocol.STREAM_PORT, target_type),
    ]


def _disks(spec: VMSpec, hypervisor: str) -> list[d.Disk]:
    disks: list[d.Disk] = []
    for x in spec.disks:
        disks.append(disk(x, hypervisor, [y.target for y in disks]))
    return disks


def disk(spec: DiskSpec, hypervisor: str, taken: Collection[str] = ()) -> d.Disk:
    """A disk device for ``spec`` on the first target name not in ``taken``.

    Used for the boot XML and for hot-plug alike (``taken``: the running VM's targets).
    """
    if not 0 < len(spec.serial.encode()) <= MAX_SERIAL:
        raise InvalidArgument(f"disk serial {spec.serial!r} must be 1 to {MAX_SERIAL} bytes")
    prefix = "xvd" if hypervisor == "xen" else "vd"
    target = next(_dev(prefix, i) for i in range(len(taken) + 1) if _dev(prefix, i) not in taken)
    if hypervisor == "xen":
        return d.Disk(spec.path, target, "xen", spec.serial, spec.readonly)
    return d.Disk(spec.path, target, "virtio", spec.serial, spec.readonly, "qemu", cache=DISK_CACHE)


def nic(spec: NicSpec, hypervisor: str) -> d.Interface:
    """A NIC device for ``spec`` (virtio on QEMU; libxl picks its own model)."""
    model = "" if hypervisor == "xen" else "virtio"
    if spec.bridge:
        return d.Interface(spec.mac, "bridge", bridge=spec.bridge, model=model)
    return d.Interface(spec.mac, "ethernet", tap=spec.tap, model=model)


def share(spec: ShareSpec) -> d.Filesystem:
    """A virtio-9p share of ``spec.path``; boot XML only (QEMU cannot hot-plug it)."""
    return d.Filesystem(spec.path, spec.tag, SHARE_ACCESSMODE, spec.readonly)


def share_mount_options(spec: ShareSpec) -> str:
    """The options of the agent's 9p mount of a share (its MOUNT "options")."""
    return SHARE_MOUNT_OPTIONS


def _dev(prefix: str, index: int) -> str:
    """vda, vdb, ... vdz, vdaa (libvirt's naming)."""
    letters = string.ascii_lowercase
    name = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        name = letters[rem] + name
    return prefix + name
