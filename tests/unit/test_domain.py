"""Domain XML from the typed model, against golden files; accel detection."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hyperd.errors import InvalidArgument
from hyperd.vm import accel, designer

GOLDEN = Path(__file__).parent / "golden"


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


@pytest.mark.parametrize("hypervisor", ["qemu", "kvm", "xen"])
def test_domain_xml_matches_golden(hypervisor):
    xml = designer.design(_spec(), hypervisor).to_xml()
    golden = GOLDEN / f"domain-{hypervisor}.xml"
    if os.environ.get("HYPER_UPDATE_GOLDEN"):
        golden.write_text(xml)
    assert xml == golden.read_text()


@pytest.mark.skipif(not shutil.which("virt-xml-validate"), reason="libvirt-clients missing")
@pytest.mark.parametrize("hypervisor", ["qemu", "kvm", "xen"])
def test_domain_xml_validates_against_libvirt_schema(hypervisor):
    path = GOLDEN / f"domain-{hypervisor}.xml"
    result = subprocess.run(
        ["virt-xml-validate", str(path), "domain"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


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
