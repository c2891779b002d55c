"""hyperd.vm.virt against real libvirt: the Domain object and how libvirt's errors surface."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from pathlib import Path

import pytest

from hyperd.errors import NotFound
from hyperd.vm import accel, designer
from hyperd.vm import domain as d
from hyperd.vm.virt import Domain, Hypervisor, VirtError

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def hv():
    hv = Hypervisor()
    yield hv
    hv.close()


@contextlib.contextmanager
def bare_vm(hv, assets, workdir, metadata=None):
    """A VM with the guest kernel and agent but no disks, made through Hypervisor.create."""
    name = f"hyper-test-{uuid.uuid4().hex[:10]}"
    run_dir = Path("/run/hyper-test") / name
    run_dir.mkdir(parents=True)
    spec = designer.VMSpec(
        name=name,
        uuid=str(uuid.uuid4()),
        kernel=assets.kernel,
        initrd=assets.initrd,
        control_socket=str(run_dir / "control.sock"),
        stream_socket=str(run_dir / "stream.sock"),
        console_log=str(workdir / f"{name}.console.log"),
        metadata=metadata or {},
    )
    try:
        yield hv.create(designer.design(spec, accel.domain_type(accel.choose())).to_xml())
    finally:
        hv.destroy(name)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def domain(hv, libvirt_up, guest_assets, vm_workdir):
    with bare_vm(hv, guest_assets, vm_workdir, {"owner": "test_virt"}) as dom:
        yield dom


def test_create_and_lookup_give_the_same_domain(hv, domain):
    found = hv.lookup(domain.name)
    assert isinstance(domain, Domain)
    assert (found.name, found.uuid) == (domain.name, domain.uuid)
    assert found.state() == hv.state(domain.name) == "running"
    assert f"<name>{domain.name}</name>" in found.xml()


def test_metadata_is_read_back(hv, domain):
    assert domain.metadata(designer.METADATA_NS, "owner") == "test_virt"
    assert domain.metadata(designer.METADATA_NS, "absent") is None
    assert hv.metadata(domain.name, designer.METADATA_NS, "owner") == "test_virt"


def test_suspend_and_resume_change_the_state(domain):
    domain.suspend()
    try:
        assert domain.state() == "paused"
    finally:
        domain.resume()
    assert domain.state() == "running"


def test_refusals_are_virt_errors_naming_the_vm(domain):
    with pytest.raises(VirtError, match=rf"cannot resume VM {domain.name}"):
        domain.resume()  # it is not paused
    missing = d.Disk("/nonexistent/disk.img", "vdz", "virtio", "ghost", driver="qemu")
    with pytest.raises(VirtError, match=rf"attach disk vdz to VM {domain.name}"):
        domain.attach_device(missing.to_device_xml())


def test_detaching_a_device_the_vm_lacks_is_not_found(domain):
    nic = d.Interface("52:54:00:00:00:99")
    with pytest.raises(NotFound, match=rf"VM {domain.name} has no interface 52:54:00:00:00:99"):
        domain.detach_device(nic.to_device_xml())


def test_a_missing_domain_is_not_found(hv):
    name = f"hyper-test-missing-{uuid.uuid4().hex[:6]}"
    with pytest.raises(NotFound, match=name):
        hv.lookup(name)
    assert hv.state(name) is None
    assert hv.destroy(name) is False
    assert hv.metadata(name, designer.METADATA_NS, "owner") is None


def test_create_refusal_is_a_virt_error(hv):
    with pytest.raises(VirtError, match="cannot start VM"):
        hv.create("<domain type='qemu'><name>hyper-test-broken</name></domain>")


def test_a_destroyed_domain_reports_gone(hv, libvirt_up, guest_assets, vm_workdir):
    with bare_vm(hv, guest_assets, vm_workdir) as dom:
        assert dom.destroy() is True
        assert dom.state() is None
        assert dom.destroy() is False
        with pytest.raises(NotFound, match=dom.name):
            dom.xml()
