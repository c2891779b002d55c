"""libvirt domain XML from small typed objects, and devices back from a live domain's XML.

Conversion only: each object turns its fields into XML and decides nothing. Defaults and
policy (machine type, buses, command line, limits) live in ``hyperd.vm.designer``.
Every device also writes itself alone (``to_device_xml``), the form hot-plug takes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_"): str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = str(text)
    return el


def _text(el: ET.Element, path: str, attr: str = "") -> str:
    """An attribute (or the text) of the element at ``path``; "" when absent."""
    found = el.find(path)
    if found is None:
        return ""
    return (found.get(attr) if attr else found.text) or ""


class Device:
    """A ``<devices>`` child that can also stand alone (hot-plug takes one device's XML)."""

    def to_xml(self, parent: ET.Element) -> None:
        """Append this device's element to ``parent``."""
        raise NotImplementedError

    def to_device_xml(self) -> str:
        """This device alone, as libvirt's attach/detach calls want it."""
        holder = ET.Element("devices")
        self.to_xml(holder)
        (el,) = holder
        ET.indent(el)
        return ET.tostring(el, encoding="unicode") + "\n"


@dataclass
class OSBoot:
    """Direct kernel boot: ``<os>`` with type, kernel, initrd and command line."""

    type: str  # hvm | xenpvh
    kernel: str
    initrd: str
    cmdline: str
    machine: str = ""
    arch: str = "x86_64"

    def to_xml(self, parent: ET.Element) -> None:
        os_el = _sub(parent, "os")
        attrs = {"arch": self.arch}
        if self.machine:
            attrs["machine"] = self.machine
        _sub(os_el, "type", self.type, **attrs)
        _sub(os_el, "kernel", self.kernel)
        _sub(os_el, "initrd", self.initrd)
        _sub(os_el, "cmdline", self.cmdline)


@dataclass
class Features:
    """``<features>``: ACPI and the TCG translation-cache cap."""

    acpi: bool = True
    tcg_tb_cache_mib: int = 0

    def to_xml(self, parent: ET.Element) -> None:
        if not (self.acpi or self.tcg_tb_cache_mib):
            return
        feats = _sub(parent, "features")
        if self.acpi:
            _sub(feats, "acpi")
        if self.tcg_tb_cache_mib:
            tcg = _sub(feats, "tcg")
            _sub(tcg, "tb-cache", self.tcg_tb_cache_mib, unit="MiB")


@dataclass
class CPU:
    """``<cpu mode=...>``; an empty mode writes nothing."""

    mode: str = ""

    def to_xml(self, parent: ET.Element) -> None:
        if self.mode:
            _sub(parent, "cpu", mode=self.mode)


@dataclass
class Disk(Device):
    """A file-backed disk with a serial the guest finds it by."""

    source: str
    target: str  # vda, xvda
    bus: str  # virtio, xen
    serial: str
    readonly: bool = False
    driver: str = ""  # qemu (for QEMU/KVM), "" lets libxl choose
    fmt: str = "raw"
    cache: str = ""

    def to_xml(self, parent: ET.Element) -> None:
        disk = _sub(parent, "disk", type="file", device="disk")
        if self.driver:
            drv = {"name": self.driver, "type": self.fmt}
            if self.cache:
                drv["cache"] = self.cache
            _sub(disk, "driver", **drv)
        _sub(disk, "source", file=self.source)
        _sub(disk, "target", dev=self.target, bus=self.bus)
        _sub(disk, "serial", self.serial)
        if self.readonly:
            _sub(disk, "readonly")

    @classmethod
    def from_element(cls, el: ET.Element) -> Disk:
        """A ``<disk>`` element (as in a live domain's XML) as a Disk."""
        return cls(
            source=_text(el, "source", "file"),
            target=_text(el, "target", "dev"),
            bus=_text(el, "target", "bus"),
            serial=_text(el, "serial"),
            readonly=el.find("readonly") is not None,
            driver=_text(el, "driver", "name"),
            fmt=_text(el, "driver", "type") or "raw",
            cache=_text(el, "driver", "cache"),
        )


@dataclass
class Channel(Device):
    """A named host<->guest port on a unix socket (virtio-serial, or xen PV console)."""

    path: str
    name: str
    target_type: str  # virtio | xen

    def to_xml(self, parent: ET.Element) -> None:
        ch = _sub(parent, "channel", type="unix")
        _sub(ch, "source", mode="bind", path=self.path)
        _sub(ch, "target", type=self.target_type, name=self.name)


@dataclass
class Serial(Device):
    """The guest console written to a log file."""

    log_path: str
    target_type: str = ""  # isa-serial for QEMU; libxl picks its own

    def to_xml(self, parent: ET.Element) -> None:
        serial = _sub(parent, "serial", type="file")
        _sub(serial, "source", path=self.log_path)
        if self.target_type:
            _sub(serial, "target", type=self.target_type, port=0)


@dataclass
class Interface(Device):
    """An ethernet NIC on a tap the host prepared (or a bridge)."""

    mac: str
    kind: str = "ethernet"  # ethernet | bridge
    tap: str = ""
    bridge: str = ""
    model: str = "virtio"

    def to_xml(self, parent: ET.Element) -> None:
        nic = _sub(parent, "interface", type=self.kind)
        _sub(nic, "mac", address=self.mac)
        if self.kind == "bridge":
            _sub(nic, "source", bridge=self.bridge)
        if self.tap:
            _sub(nic, "target", dev=self.tap, managed="no")
        if self.model:
            _sub(nic, "model", type=self.model)

    @classmethod
    def from_element(cls, el: ET.Element) -> Interface:
        """An ``<interface>`` element as an Interface (``tap`` is the host device in use)."""
        return cls(
            mac=_text(el, "mac", "address"),
            kind=el.get("type", ""),
            tap=_text(el, "target", "dev"),
            bridge=_text(el, "source", "bridge"),
            model=_text(el, "model", "type"),
        )


@dataclass
class Filesystem(Device):
    """A host directory exported to the guest over virtio-9p, found there by its tag."""

    source_dir: str
    tag: str
    accessmode: str  # passthrough | mapped | squash
    readonly: bool = False
    driver: str = "path"

    def to_xml(self, parent: ET.Element) -> None:
        fs = _sub(parent, "filesystem", type="mount", accessmode=self.accessmode)
        if self.driver:
            _sub(fs, "driver", type=self.driver)
        _sub(fs, "source", dir=self.source_dir)
        _sub(fs, "target", dir=self.tag)
        if self.readonly:
            _sub(fs, "readonly")

    @classmethod
    def from_element(cls, el: ET.Element) -> Filesystem:
        """A ``<filesystem>`` element as a Filesystem."""
        return cls(
            source_dir=_text(el, "source", "dir"),
            tag=_text(el, "target", "dir"),
            # libvirt's default when the attribute is left out
            accessmode=el.get("accessmode", "passthrough"),
            readonly=el.find("readonly") is not None,
            driver=_text(el, "driver", "type"),
        )


@dataclass
class Rng(Device):
    """A virtio entropy device fed from a host file."""

    backend: str = "/dev/urandom"

    def to_xml(self, parent: ET.Element) -> None:
        rng = _sub(parent, "rng", model="virtio")
        _sub(rng, "backend", self.backend, model="random")


@dataclass
class Devices:
    """``<devices>``; ``none_models`` lists default devices to switch off."""

    emulator: str = ""
    disks: list[Disk] = field(default_factory=list)
    filesystems: list[Filesystem] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    interfaces: list[Interface] = field(default_factory=list)
    serial: Serial | None = None
    rng: Rng | None = None
    no_usb: bool = False
    no_memballoon: bool = False

    def to_xml(self, parent: ET.Element) -> None:
        devs = _sub(parent, "devices")
        if self.emulator:
            _sub(devs, "emulator", self.emulator)
        for item in [*self.disks, *self.filesystems, *self.interfaces, *self.channels]:
            item.to_xml(devs)
        if self.serial:
            self.serial.to_xml(devs)
        if self.rng:
            self.rng.to_xml(devs)
        if self.no_usb:
            _sub(devs, "controller", type="usb", model="none")
        if self.no_memballoon:
            _sub(devs, "memballoon", model="none")

    @classmethod
    def parse(cls, xml: str) -> Devices:
        """The disks, interfaces and filesystems of a domain's XML (other devices are skipped)."""
        try:
            devs = ET.fromstring(xml).find("devices")
        except ET.ParseError as exc:
            raise ValueError(f"domain XML does not parse: {exc}") from exc
        if devs is None:
            return cls()
        return cls(
            disks=[Disk.from_element(el) for el in devs.findall("disk")],
            filesystems=[Filesystem.from_element(el) for el in devs.findall("filesystem")],
            interfaces=[Interface.from_element(el) for el in devs.findall("interface")],
        )

    def disk(self, serial: str) -> Disk | None:
        """The disk with this serial."""
        return next((x for x in self.disks if x.serial == serial), None)

    def interface(self, mac: str) -> Interface | None:
        """The NIC with this MAC (any case)."""
        return next((x for x in self.interfaces if x.mac.lower() == mac.lower()), None)

    def filesystem(self, tag: str) -> Filesystem | None:
        """The 9p share with this tag."""
        return next((x for x in self.filesystems if x.tag == tag), None)


# How libvirt tells devices of a kind apart when it detaches one: (child path, attribute).
_IDENTITY = {
    "disk": ("target", "dev"),
    "interface": ("mac", "address"),
    "filesystem": ("target", "dir"),
}


def _identity(el: ET.Element) -> str:
    path, attr = _IDENTITY[el.tag]
    return _text(el, path, attr).lower()


def _parse_device(device_xml: str) -> ET.Element:
    try:
        return ET.fromstring(device_xml)
    except ET.ParseError as exc:
        raise ValueError(f"device XML does not parse: {exc}") from exc


def device_identity(device_xml: str) -> str:
    """A device named for messages: ``disk vdb``, ``interface 52:54:00:...``, ``rng``."""
    el = _parse_device(device_xml)
    return f"{el.tag} {_identity(el)}" if el.tag in _IDENTITY else el.tag


def has_device(domain_xml: str, device_xml: str) -> bool:
    """True while the domain XML holds the device (a disk, interface or filesystem)."""
    dev = _parse_device(device_xml)
    if dev.tag not in _IDENTITY:
        raise ValueError(f"cannot tell one <{dev.tag}> device from another")
    devs = ET.fromstring(domain_xml).find("devices")
    found = devs.findall(dev.tag) if devs is not None else []
    return any(_identity(el) == _identity(dev) for el in found)


@dataclass
class SecLabel:
    """``<seclabel>``: how a security driver labels the emulator process and its files."""

    model: str  # dac | selinux | apparmor
    label: str = ""  # dac: "+uid:+gid"
    type: str = "static"
    relabel: bool = False

    def to_xml(self, parent: ET.Element) -> None:
        relabel = "yes" if self.relabel else "no"
        sec = _sub(parent, "seclabel", type=self.type, model=self.model, relabel=relabel)
        if self.label:
            _sub(sec, "label", self.label)

    @classmethod
    def parse(cls, xml: str) -> list[SecLabel]:
        """The domain-level ``<seclabel>`` elements of a domain's (live) XML."""
        try:
            root = ET.fromstring(xml)
        except ET.ParseError as exc:
            raise ValueError(f"domain XML does not parse: {exc}") from exc
        return [
            cls(
                model=el.get("model", ""),
                label=_text(el, "label"),
                type=el.get("type", ""),
                relabel=el.get("relabel") == "yes",
            )
            for el in root.findall("seclabel")
        ]


@dataclass
class Domain:
    """A whole ``<domain>``."""

    type: str  # kvm | qemu | xen
    name: str
    uuid: str
    memory_mib: int
    vcpus: int
    os: OSBoot
    features: Features = field(default_factory=Features)
    cpu: CPU = field(default_factory=CPU)
    devices: Devices = field(default_factory=Devices)
    on_poweroff: str = "destroy"
    on_reboot: str = "destroy"
    on_crash: str = "destroy"
    metadata: dict[str, str] = field(default_factory=dict)
    metadata_ns: str = ""
    seclabels: list[SecLabel] = field(default_factory=list)
    # QEMU arguments libvirt has no element for (``<qemu:commandline>``; libvirt marks
    # such a domain "tainted: custom-argv")
    qemu_args: list[str] = field(default_factory=list)

    def to_element(self) -> ET.Element:
        """The ``<domain>`` element."""
        dom = ET.Element("domain", type=self.type)
        if self.qemu_args:
            dom.set("xmlns:qemu", QEMU_NS)
        _sub(dom, "name", self.name)
        _sub(dom, "uuid", self.uuid)
        if self.metadata and self.metadata_ns:
            meta = _sub(_sub(dom, "metadata"), "hyper:vm")
            meta.set("xmlns:hyper", self.metadata_ns)
            for key, value in self.metadata.items():
                _sub(meta, f"hyper:{key}", value)
        _sub(dom, "memory", self.memory_mib, unit="MiB")
        _sub(dom, "vcpu", self.vcpus)
        self.os.to_xml(dom)
        self.features.to_xml(dom)
        self.cpu.to_xml(dom)
        _sub(dom, "on_poweroff", self.on_poweroff)
        _sub(dom, "on_reboot", self.on_reboot)
        _sub(dom, "on_crash", self.on_crash)
        self.devices.to_xml(dom)
        for label in self.seclabels:
            label.to_xml(dom)
        if self.qemu_args:
            cmdline = _sub(dom, "qemu:commandline")
            for arg in self.qemu_args:
                _sub(cmdline, "qemu:arg", value=arg)
        return dom

    def to_xml(self) -> str:
        """The domain as an indented XML document."""
        el = self.to_element()
        ET.indent(el)
        return ET.tostring(el, encoding="unicode") + "\n"
