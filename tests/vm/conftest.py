"""VM fixtures: they own the VM lifecycle, clean up always, keep failed tests' console."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest

from hyperd.config import Config
from hyperd.vm import users
from tests.conftest import ROOT, failed
from tests.workdir import qemu_workdir

from .guest import boot_guest, build_busybox_disk

LOG_DIR = ROOT / "build" / "test-logs"


@pytest.fixture(scope="session")
def vm_workdir():
    path = qemu_workdir("hyper-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def vm_users(vm_workdir):
    """Each VM's QEMU runs as a user of its own, as under hyperd (leases in the workdir)."""
    return users.VMUsers(
        vm_workdir / users.LEASE_DIR, Config.vm_uid_base, Config.vm_uid_count, users.qemu_gid()
    )


@pytest.fixture(scope="session")
def busybox_image(vm_workdir):
    return build_busybox_disk(vm_workdir / "busybox")


@pytest.fixture
def boot(loop_thread, libvirt_up, guest_assets, busybox_image, vm_workdir, vm_users, request):
    """Boot a fresh VM for one test (for tests that end or break their VM)."""
    guests = []

    def _boot():
        name = f"hyper-test-{uuid.uuid4().hex[:10]}"
        guest = loop_thread.run(
            boot_guest(name, guest_assets, busybox_image, vm_workdir, users=vm_users)
        )
        guests.append(guest)
        return guest

    yield _boot
    for guest in guests:
        _keep_console(guest, request)
        loop_thread.run(guest.machine.destroy())


@pytest.fixture(scope="module")
def shared_guest(
    request, loop_thread, libvirt_up, guest_assets, busybox_image, vm_workdir, vm_users
):
    """One VM shared by a module's tests: each runs its own processes in it. A module
    whose tests act as the guest's root (mknod and mount its disks) sets
    ``PRIVILEGED_CONTAINER = True``."""
    name = f"hyper-test-{uuid.uuid4().hex[:10]}"
    privileged = getattr(request.module, "PRIVILEGED_CONTAINER", False)
    guest = loop_thread.run(
        boot_guest(
            name, guest_assets, busybox_image, vm_workdir, privileged=privileged, users=vm_users
        )
    )
    yield guest
    loop_thread.run(guest.machine.destroy())


@pytest.fixture
def guest(shared_guest, request):
    yield shared_guest
    _keep_console(shared_guest, request)


@pytest.fixture(scope="module")
def module_disks_guest(
    request, loop_thread, libvirt_up, guest_assets, busybox_image, vm_workdir, vm_users
):
    """One VM for a module, with the disks its ``extra_disks(workdir)`` returns
    (DiskSpecs) after the image and the writable disk of container c0."""
    name = f"hyper-test-{uuid.uuid4().hex[:10]}"
    work = vm_workdir / name
    work.mkdir()
    disks = request.module.extra_disks(work)
    memory = getattr(request.module, "VM_MEMORY_MIB", 0)
    guest = loop_thread.run(
        boot_guest(
            name,
            guest_assets,
            busybox_image,
            work,
            extra_disks=disks,
            memory_mib=memory,
            users=vm_users,
        )
    )
    yield guest
    loop_thread.run(guest.machine.destroy())
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def disks_guest(module_disks_guest, request):
    yield module_disks_guest
    _keep_console(module_disks_guest, request)


def _keep_console(guest, request) -> None:
    """Copy the VM's console log next to the build when the test failed."""
    if not failed(request):
        return
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    dest = LOG_DIR / f"{request.node.name}.console.log"
    src = guest.machine.spec.console_log
    if os.path.exists(src):
        shutil.copy(src, dest)
        print(f"console log of the failed test kept at {dest}")
