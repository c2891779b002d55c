"""Domain XML from the typed model, against golden files; devices parsed back; accel detection."""

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hyperd.errors import InvalidArgument
from hyperd.vm import accel, designer, stats
from hyperd.vm import domain as d

GOLDEN = Path(__file__).parent / "golden"
LIVE_MAC = "52:54:00:6b:00:01"
needs_validator = pytest.mark.skipif(
    not shutil.which("virt-xml-validate"), reason="libvirt-clients missing"
)


def _spec() -> designer.VMSpec:
    return designer.VMSpec(
        name="hyper-0123456789ab",
        uuid="6f1c3f0e-0d9b-4a57-9d8e-0a1b2c3d4e5f",
        kernel="/usr/local/lib/hyper/vmlinux",
        initrd="/usr/local/lib/hyper/initrd.img",
        control_socket="/run/hyper/vms/hyper-0123456789ab/control.sock",
        stream_socket="/run/hyper/vms/hyper-0123456789ab/stream.sock",
        console_log="/var/lib/hyper/containers/0123456789ab/console.log",
        vcpus=2,
        memory_mib=512,
        disks=[
            designer.DiskSpec("/var/lib/hyper/rootfs/abc.img", "image", readonly=True),
            designer.DiskSpec("/var/lib/hyper/containers/0123456789ab/rw.img", "rw"),
        ],
        nics=[designer.NicSpec("52:54:00:12:34:56", tap="hyt0123456789a")],
        metadata={"container": "0123456789ab"},
    )


def _shares_spec() -> designer.VMSpec:
    spec = _spec()
    spec.shares = [
        designer.ShareSpec("/srv/data", "vol0"),
        designer.ShareSpec("/etc/hyper/conf", "vol1", readonly=True),
    ]
    return spec


def _own_user_spec() -> designer.VMSpec:
    spec = _spec()
    spec.user = (100_000_007, 64055)
    return spec


def _matches_golden(text: str, name: str) -> bool:
    golden = GOLDEN / name
    if os.environ.get("HYPER_UPDATE_GOLDEN"):
        golden.write_text(text)
    return text == golden.read_text()


def _validate(path: Path) -> None:
    result = subprocess.run(
        ["virt-xml-validate", str(path), "domain"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def _template_spec() -> designer.VMSpec:
    spec = _spec()
    spec.disks = []
    spec.ram_file = designer.RamFile("/var/lib/hyper/template/ram", shared=True)
    return spec


def _clone_spec() -> designer.VMSpec:
    spec = _spec()
    spec.disks = []
    spec.ram_file = designer.RamFile("/srv/a,b/template/ram", shared=False)
    spec.incoming = True
    return spec


DOMAINS = {
    "domain-qemu.xml": (_spec, "qemu"),
    "domain-kvm.xml": (_spec, "kvm"),
    "domain-xen.xml": (_spec, "xen"),
    "domain-qemu-shares.xml": (_shares_spec, "qemu"),
    "domain-qemu-user.xml": (_own_user_spec, "qemu"),
    "domain-qemu-template.xml": (_template_spec, "qemu"),
    "domain-qemu-clone.xml": (_clone_spec, "qemu"),
}


@pytest.mark.parametrize("golden", DOMAINS)
def test_domain_xml_matches_golden(golden):
    make_spec, hypervisor = DOMAINS[golden]
    assert _matches_golden(designer.design(make_spec(), hypervisor).to_xml(), golden)


@needs_validator
@pytest.mark.parametrize("golden", DOMAINS)
def test_domain_xml_validates_against_libvirt_schema(golden):
    _validate(GOLDEN / golden)


def _hotplug_devices() -> dict[str, d.Device]:
    """The devices hot-plug would send to the VM of _spec() (vda, vdb taken)."""
    return {
        "device-disk.xml": designer.disk(
            designer.DiskSpec("/var/lib/hyper/volumes/v1/disk.ext4", "vol-v1"),
            "qemu",
            ["vda", "vdb"],
        ),
        "device-nic.xml": designer.nic(designer.NicSpec("52:54:00:ab:cd:ef", tap="hyt1"), "qemu"),
        "device-nic-bridge.xml": designer.nic(
            designer.NicSpec("52:54:00:ab:cd:f0", bridge="hyper0"), "qemu"
        ),
        "device-share.xml": designer.share(designer.ShareSpec("/srv/www", "vol2", readonly=True)),
    }


@pytest.mark.parametrize("golden", _hotplug_devices())
def test_device_xml_matches_golden(golden):
    assert _matches_golden(_hotplug_devices()[golden].to_device_xml(), golden)


@needs_validator
def test_device_xml_validates_inside_a_domain(tmp_path):
    """The schema has no standalone device type: put every device into a whole domain."""
    dom = ET.fromstring((GOLDEN / "domain-qemu.xml").read_text())
    devices = dom.find("devices")
    for golden in _hotplug_devices():
        devices.append(ET.fromstring((GOLDEN / golden).read_text()))
    path = tmp_path / "with-hotplugged.xml"
    path.write_text(ET.tostring(dom, encoding="unicode"))
    _validate(path)


def test_hotplugged_disk_takes_first_free_target():
    spec = designer.DiskSpec("/x.img", "vol")
    assert designer.disk(spec, "qemu", ["vda", "vdc"]).target == "vdb"
    assert designer.disk(spec, "qemu", ["vda", "vdb"]).target == "vdc"
    assert designer.disk(spec, "xen", ["xvda"]).target == "xvdb"
    assert designer.disk(spec, "qemu").cache == designer.DISK_CACHE


@pytest.mark.parametrize("serial", ["", "s" * 21])
def test_disk_serial_the_guest_cannot_see_is_refused(serial):
    with pytest.raises(InvalidArgument, match="serial"):
        designer.disk(designer.DiskSpec("/x.img", serial), "qemu")


def test_shares_make_qemu_run_as_root_and_only_then():
    shared = designer.design(_shares_spec(), "qemu")
    assert [(x.model, x.label) for x in shared.seclabels] == [("dac", "+0:+0")]
    assert {x.accessmode for x in shared.devices.filesystems} == {"passthrough"}
    assert designer.design(_spec(), "qemu").seclabels == []


def test_shares_are_refused_on_xen():
    with pytest.raises(ValueError, match="9p"):
        designer.design(_shares_spec(), "xen")


def test_share_mount_options():
    opts = designer.share_mount_options(designer.ShareSpec("/a", "t", readonly=True))
    assert f"msize={designer.SHARE_MSIZE}" in opts and "posixacl" in opts
    # the agent adds trans/version; read-only is the mount's flag, not an option
    assert "trans=" not in opts and "ro" not in opts.split(",")


def test_devices_round_trip_through_xml():
    devices = designer.design(_shares_spec(), "qemu").devices
    parsed = d.Devices.parse(designer.design(_shares_spec(), "qemu").to_xml())
    assert parsed.disks == devices.disks
    assert parsed.interfaces == devices.interfaces
    assert parsed.filesystems == devices.filesystems


def test_live_domain_xml_finds_devices_by_serial_mac_and_tag():
    """live-qemu.xml is what libvirt 9.0 returned for a test VM with hot-plugged devices."""
    devices = d.Devices.parse((GOLDEN / "live-qemu.xml").read_text())
    image = devices.disk("image")
    assert (image.target, image.bus, image.readonly) == ("vda", "virtio", True)
    assert devices.disk("hot0").target == "vdc"
    assert devices.disk("nope") is None
    nic = devices.interface(LIVE_MAC.upper())
    assert (nic.mac, nic.kind, nic.model) == (LIVE_MAC, "ethernet", "virtio")
    assert nic.tap.startswith("vnet")
    share = devices.filesystem("share0")
    assert (share.accessmode, share.driver, share.readonly) == ("passthrough", "path", False)
    assert devices.filesystem("share1") is None


def test_has_device_follows_identity_not_the_whole_element():
    live = (GOLDEN / "live-qemu.xml").read_text()
    disk = d.Disk("/elsewhere.img", "vdc", "virtio", "other")
    assert d.has_device(live, disk.to_device_xml())
    assert not d.has_device(live, d.Disk("/x", "vdq", "virtio", "x").to_device_xml())
    assert d.has_device(live, d.Interface(LIVE_MAC.upper()).to_device_xml())
    assert d.device_identity(disk.to_device_xml()) == "disk vdc"
    assert d.device_identity(d.Rng().to_device_xml()) == "rng"
    with pytest.raises(ValueError, match="rng"):
        d.has_device(live, d.Rng().to_device_xml())
    with pytest.raises(ValueError, match="parse"):
        d.has_device(live, "<disk")


def test_tcg_caps_translation_cache_and_kvm_does_not():
    tcg = designer.design(_spec(), "qemu", tb_cache_mib=48).to_xml()
    assert '<tb-cache unit="MiB">48</tb-cache>' in tcg
    assert "tb-cache" not in designer.design(_spec(), "kvm").to_xml()


def test_disk_names_follow_libvirt():
    assert [designer._dev("vd", i) for i in (0, 1, 25, 26, 27)] == [
        "vda",
        "vdb",
        "vdz",
        "vdaa",
        "vdab",
    ]


def test_unknown_hypervisor_is_refused():
    with pytest.raises(ValueError):
        designer.design(_spec(), "vmware")


def test_pvm_kvm_is_not_hardware_kvm(tmp_path):
    (tmp_path / "kvm").mkdir()
    (tmp_path / "kvm_pvm").mkdir()
    dev = tmp_path / "kvm-dev"
    dev.write_text("")
    assert not accel.hardware_kvm_usable(tmp_path, str(dev))
    (tmp_path / "kvm_intel").mkdir()
    assert accel.hardware_kvm_usable(tmp_path, str(dev))
    assert not accel.hardware_kvm_usable(tmp_path, str(tmp_path / "missing"))


def test_accel_choice_and_override():
    assert accel.choose("auto", kvm_usable=False) == "tcg"
    assert accel.choose("auto", kvm_usable=True) == "kvm"
    assert accel.choose("tcg", kvm_usable=True) == "tcg"
    assert accel.choose("kvm", kvm_usable=False) == "kvm"
    with pytest.raises(InvalidArgument):
        accel.choose("hvf")


def test_this_machine_is_tcg_when_only_pvm():
    if Path("/sys/module/kvm_pvm").is_dir() and not Path("/sys/module/kvm_intel").is_dir():
        assert accel.choose("auto") == "tcg"


def test_stats_record_keys_disks_by_serial_and_nics_by_mac():
    devices = d.Devices(
        disks=[d.Disk("/i", "vda", "virtio", "image"), d.Disk("/r", "vdb", "virtio", "rw")],
        interfaces=[
            d.Interface("52:54:00:00:00:0A", "ethernet", tap="vnet3"),
            d.Interface("52:54:00:00:00:0b", "bridge", tap="vnet4", bridge="br0"),
        ],
    )
    record = {
        "cpu.time": 123,
        "balloon.current": 262144,
        "balloon.rss": 1000,
        "block.count": 3,
        "block.0.name": "vda",
        "block.0.rd.bytes": 10,
        "block.0.rd.reqs": 1,
        "block.1.name": "vdb",
        "block.1.wr.bytes": 4096,
        "block.1.wr.reqs": 2,
        "block.2.name": "vdz",  # plugged after the XML was read: keyed by its target
        "net.count": 2,
        "net.0.name": "vnet3",
        "net.0.rx.bytes": 7,
        "net.0.rx.pkts": 1,
        "net.0.tx.bytes": 9,
        "net.0.tx.pkts": 3,
        "net.1.name": "vnet4",
        "net.1.rx.bytes": 5,
        "net.1.rx.pkts": 2,
    }
    s = stats.from_record(record, devices, pid=42)
    assert (s.pid, s.cpu_time_ns, s.rss_bytes) == (42, 123, 1000 * 1024)
    assert s.guest_memory_bytes == 256 << 20
    assert set(s.disks) == {"image", "rw", "vdz"}
    assert (s.disks["image"].rd_bytes, s.disks["image"].rd_ops) == (10, 1)
    assert (s.disks["rw"].wr_bytes, s.disks["rw"].wr_ops, s.disks["rw"].target) == (4096, 2, "vdb")
    # ethernet: libvirt counts from the tap's side, so its tx is the guest's rx
    eth = s.nics["52:54:00:00:00:0a"]
    assert (eth.rx_bytes, eth.rx_packets, eth.tx_bytes, eth.tx_packets) == (9, 3, 7, 1)
    bridged = s.nics["52:54:00:00:00:0b"]
    assert (bridged.rx_bytes, bridged.rx_packets, bridged.tx_bytes) == (5, 2, 0)


def test_emulator_pid_is_found_by_uuid_and_forgotten_when_gone(tmp_path):
    uuid = "6f1c3f0e-0d9b-4a57-9d8e-0a1b2c3d4e5f"
    for pid, args in ((10, ["bash"]), (20, ["qemu-system-x86_64", "-uuid", uuid, "-m", "256"])):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in args))
    assert stats.emulator_pid(uuid, tmp_path) == 20
    shutil.rmtree(tmp_path / "20")
    assert stats.emulator_pid(uuid, tmp_path) is None


def test_clone_maps_the_template_ram_private_and_waits_for_its_state():
    """A template's RAM file is shared (its writes reach the file); a clone maps the same
    file private under the same object id (the saved state names its RAM by it) and its
    QEMU waits for the state. A comma in the path is doubled (QEMU's option syntax)."""
    template = designer.design(_template_spec(), "qemu").qemu_args
    clone = designer.design(_clone_spec(), "qemu").qemu_args
    assert "share=on" in template[1] and "-incoming" not in template
    assert "share=off" in clone[1] and "mem-path=/srv/a,,b/template/ram," in clone[1]
    assert clone[-2:] == ["-incoming", "defer"]
    for args in (template, clone):
        assert args[1].startswith(f"memory-backend-file,id={designer.RAM_BACKEND},")
        assert args[2:4] == ["-machine", f"memory-backend={designer.RAM_BACKEND}"]
    assert designer.design(_spec(), "qemu").qemu_args == []
