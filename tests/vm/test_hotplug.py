"""Devices of a running VM, against real libvirt + QEMU + HyperKernel + hyperstart.

Disks and NICs are hot-plugged into (and unplugged from) the module's shared VM; a 9p
share, which QEMU cannot hot-plug, gets a VM of its own booted with it. The guest side is
checked with busybox run as root in a privileged container (mknod, mount), so the tests do
not depend on how the agent mounts volumes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from hyperd.agent import protocol as p
from hyperd.agent.client import AgentError
from hyperd.errors import Conflict, NotFound
from hyperd.vm import acl, designer
from hyperd.vm import domain as d
from hyperd.vm.machine import Machine
from hyperd.vm.virt import VirtError

from .guest import CONTAINER, Guest, new_rw_disk

pytestmark = pytest.mark.vm
# The tests mknod and mount the hot-plugged disks themselves: only --privileged may.
PRIVILEGED_CONTAINER = True

MiB = 1 << 20
# Waits (20 s at most) until the guest has a disk with serial $1; its sysfs dir in $dev.
FIND_SERIAL = r"""
set -e
serial=$1
for i in $(seq 200); do
    for b in /sys/block/vd*; do [ "$(cat $b/serial)" = "$serial" ] && dev=$b; done
    [ -n "$dev" ] && break
    sleep 0.1
done
[ -n "$dev" ] || { echo "no disk with serial $serial" >&2; exit 1; }
"""
# Mounts that disk on /mnt/$1 (the container has no device node for it: make one).
MOUNT_SERIAL = (
    FIND_SERIAL
    + r"""
mknod /dev/$serial b $(cut -d: -f1 $dev/dev) $(cut -d: -f2 $dev/dev)
mkdir -p /mnt/$serial
mount -t ext4 /dev/$serial /mnt/$serial
"""
)
UMOUNT_SERIAL = "umount /mnt/$1 && rm /dev/$1"
# A copy of busybox with a file capability, and what the kernel grants from it
CAP = "cap_dac_read_search+ep"
CAP_EFF = b"CapEff:\t0000000000000004\n"


def _acl(user: int, perm: int) -> bytes:
    """A system.posix_acl_access value: owner rw, ``user`` ``perm``, group and other none."""
    undefined = 0xFFFFFFFF
    entries = [(0x01, 6, undefined), (0x02, perm, user), (0x04, 0, undefined)]
    entries += [(0x10, perm, undefined), (0x20, 0, undefined)]  # mask, other
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def _ext4_with_marker(path: Path, text: str, capbox: bool = False) -> Path:
    src = path.with_suffix(".d")
    src.mkdir()
    (src / "marker").write_text(text)
    if capbox:
        shutil.copy("/bin/busybox", src / "busybox")
        subprocess.run(["setcap", CAP, str(src / "busybox")], check=True)
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-d", str(src), str(path), "16M"],
        check=True,
    )
    return path


def _debugfs_cat(image: Path, name: str) -> str:
    out = subprocess.run(
        ["debugfs", "-R", f"cat /{name}", str(image)], capture_output=True, text=True, check=True
    )
    return out.stdout


def _serials_in_guest(guest: Guest, loop_thread) -> set[str]:
    res = loop_thread.run(guest.run(["sh", "-c", "cat /sys/block/vd*/serial"]))
    return set(res.stdout.decode().split())


def _live_devices(machine: Machine) -> d.Devices:
    return d.Devices.parse(machine.hv.lookup(machine.name).xml())


def _mac() -> str:
    tail = os.urandom(3)
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)


async def _setup_interface(agent, mac: str, timeout: float = 30.0) -> None:
    """SETUPINTERFACE by MAC, retried while the guest is still probing the new NIC."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await agent.setup_interface(mac, [])
            return
        except AgentError:
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.2)


def test_hotplugged_disk_is_mounted_written_and_released(guest, loop_thread, vm_workdir):
    """The VM's own user is let into the disk's file for as long as it is plugged."""
    machine = guest.machine
    image = _ext4_with_marker(vm_workdir / f"hot-{uuid.uuid4().hex[:6]}.ext4", "from the host\n")
    uid = machine.spec.user[0]
    loop_thread.run(machine.attach_disk(designer.DiskSpec(str(image), "hot0")))
    try:
        assert _live_devices(machine).disk("hot0").source == str(image)
        assert acl.named_users(image) == {uid: acl.READ | acl.WRITE}
        use = "cat /mnt/hot0/marker && echo written-in-guest > /mnt/hot0/from-guest"
        script = f"{MOUNT_SERIAL}\n{use}\n{UMOUNT_SERIAL}"
        res = loop_thread.run(guest.run(["sh", "-c", script, "sh", "hot0"]))
        assert (res.stdout, res.status) == (b"from the host\n", 0), res.stderr
        assert loop_thread.run(machine.stats()).disks["hot0"].wr_bytes > 0
    finally:
        loop_thread.run(machine.detach_disk("hot0"))
    assert _live_devices(machine).disk("hot0") is None
    assert acl.named_users(image) == {}
    assert "hot0" not in _serials_in_guest(guest, loop_thread)
    assert _debugfs_cat(image, "from-guest") == "written-in-guest\n"
    with pytest.raises(NotFound, match="hot0"):
        loop_thread.run(machine.detach_disk("hot0"))


def test_file_capabilities_survive_on_ext4(guest, loop_thread, vm_workdir):
    """security.capability is read from ext4 (CONFIG_EXT4_FS_SECURITY) and honoured."""
    machine = guest.machine
    image = _ext4_with_marker(vm_workdir / f"caps-{uuid.uuid4().hex[:6]}.ext4", "", capbox=True)
    loop_thread.run(machine.attach_disk(designer.DiskSpec(str(image), "caps")))
    try:
        res = loop_thread.run(guest.run(["sh", "-c", MOUNT_SERIAL, "sh", "caps"]))
        assert res.status == 0, res.stderr
        grep = ["/mnt/caps/busybox", "grep", "CapEff", "/proc/self/status"]
        res = loop_thread.run(guest.run(grep, user="user"))
        assert (res.stdout, res.status) == (CAP_EFF, 0), res.stderr
        assert loop_thread.run(guest.run(["sh", "-c", UMOUNT_SERIAL, "sh", "caps"])).status == 0
    finally:
        loop_thread.run(machine.detach_disk("caps"))


def test_disk_serial_already_in_the_vm_is_a_conflict(guest, loop_thread, vm_workdir):
    spec = designer.DiskSpec(str(vm_workdir / "unused.img"), "rw")
    with pytest.raises(Conflict, match="serial rw"):
        loop_thread.run(guest.machine.attach_disk(spec))


def test_hotplugged_nic_is_found_by_mac_and_released(guest, loop_thread):
    machine, mac = guest.machine, _mac()
    loop_thread.run(machine.attach_nic(designer.NicSpec(mac)))
    try:
        loop_thread.run(_setup_interface(guest.agent, mac))
        assert mac in loop_thread.run(machine.stats()).nics
        with pytest.raises(Conflict, match=mac):
            loop_thread.run(machine.attach_nic(designer.NicSpec(mac)))
    finally:
        loop_thread.run(machine.detach_nic(mac))
    assert _live_devices(machine).interface(mac) is None
    with pytest.raises(AgentError, match="no interface with MAC"):
        loop_thread.run(guest.agent.setup_interface(mac, []))


def test_pause_holds_the_guest_and_resume_lets_it_finish(guest, loop_thread):
    machine = guest.machine

    async def scenario():
        await machine.pause()
        paused_state = machine.hv.state(machine.name)
        run = asyncio.ensure_future(guest.run(["echo", "after the pause"]))
        await asyncio.sleep(2)
        done_while_paused = run.done()
        await machine.resume()
        return paused_state, done_while_paused, await asyncio.wait_for(run, 60)

    paused_state, done_while_paused, res = loop_thread.run(scenario())
    assert paused_state == "paused"
    assert not done_while_paused
    assert (res.stdout, res.status) == (b"after the pause\n", 0)
    assert machine.hv.state(machine.name) == "running"


def test_unplug_the_guest_cannot_answer_is_a_clear_error(guest, loop_thread, vm_workdir):
    """A paused guest cannot eject the disk: detach gives up after its wait, naming it."""
    machine = guest.machine
    image = _ext4_with_marker(vm_workdir / f"stuck-{uuid.uuid4().hex[:6]}.ext4", "x\n")
    loop_thread.run(machine.attach_disk(designer.DiskSpec(str(image), "stuck")))
    res = loop_thread.run(guest.run(["sh", "-c", FIND_SERIAL, "sh", "stuck"]))
    assert res.status == 0, res.stderr
    loop_thread.run(machine.pause())
    try:
        with pytest.raises(VirtError, match=rf"{machine.name}.*did not release disk vd"):
            loop_thread.run(machine.detach_disk("stuck", wait=3))
    finally:
        loop_thread.run(machine.resume())
    # the eject request stays pending; a running guest completes it
    loop_thread.run(_wait_until(lambda: _live_devices(machine).disk("stuck") is None, 30))
    assert "stuck" not in _serials_in_guest(guest, loop_thread)


async def _wait_until(predicate, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(predicate):
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


def test_stats_count_cpu_memory_and_disk_writes(guest, loop_thread):
    machine = guest.machine
    before = loop_thread.run(machine.stats())
    res = loop_thread.run(
        guest.run(["dd", "if=/dev/zero", "of=/stats.bin", "bs=1M", "count=4", "conv=fsync"])
    )
    assert res.status == 0, res.stderr
    after = loop_thread.run(machine.stats())
    assert after.disks["rw"].wr_bytes - before.disks["rw"].wr_bytes >= 4 * MiB
    assert after.disks["rw"].wr_ops > before.disks["rw"].wr_ops
    assert after.disks["image"].rd_bytes > 0
    assert after.cpu_time_ns > before.cpu_time_ns
    assert after.guest_memory_bytes == machine.spec.memory_mib * MiB
    assert 16 * MiB < after.rss_bytes < 4096 * MiB
    cmdline = Path(f"/proc/{after.pid}/cmdline").read_bytes().split(b"\0")
    assert b"qemu" in cmdline[0] and machine.spec.uuid.encode() in cmdline


# -- 9p share: booted with the VM ------------------------------------------------------


@pytest.fixture(scope="module")
def share_dir(vm_workdir):
    path = vm_workdir / "share"
    path.mkdir(mode=0o755)
    (path / "from-host").write_text("made on the host\n")
    (path / "from-host").chmod(0o600)  # root only: the guest reads it as root
    (path / "open").mkdir()
    (path / "open").chmod(0o1777)
    (path / "acl").write_text("readable through an ACL\n")
    (path / "acl").chmod(0o600)
    os.setxattr(path / "acl", "system.posix_acl_access", _acl(user=1000, perm=4))
    return path


@pytest.fixture(scope="module")
def share_guest(shared_guest, share_dir, loop_thread, vm_workdir):
    """A VM like the shared one, booted with share_dir as 9p tag share0, which the agent
    mounts on /mnt/share from NEWCONTAINER's mount list."""
    base = shared_guest.machine
    name = f"hyper-test-{uuid.uuid4().hex[:10]}"
    run_dir = Path("/run/hyper-test") / name
    spec = dataclasses.replace(
        base.spec,
        name=name,
        uuid=str(uuid.uuid4()),
        control_socket=str(run_dir / "control.sock"),
        stream_socket=str(run_dir / "stream.sock"),
        console_log=str(vm_workdir / f"{name}.console.log"),
        disks=[base.spec.disks[0], designer.DiskSpec(str(new_rw_disk(vm_workdir / name)), "rw")],
        shares=[designer.ShareSpec(str(share_dir), "share0")],
    )
    machine = Machine(base.hv, spec, base.hypervisor, base.tb_cache_mib)

    share = p.Mount(
        type="9p",
        source="share0",
        target="/mnt/share",
        fstype="9p",
        options=designer.share_mount_options(spec.shares[0]),
    )

    async def boot():
        await machine.boot(timeout=60)
        try:
            guest = Guest(machine)
            await guest.agent.start_pod(name)
            mounts = [*p.root_mounts("image", "ext4", "rw"), share]
            await guest.agent.create_container(CONTAINER, mounts)
        except BaseException:
            await machine.destroy()
            raise
        return guest

    guest = loop_thread.run(boot())
    yield guest
    loop_thread.run(machine.destroy())


def test_share_files_keep_real_owners(share_guest, share_dir, loop_thread):
    res = loop_thread.run(share_guest.run(["cat", "/mnt/share/from-host"]))
    assert (res.stdout, res.status) == (b"made on the host\n", 0)

    as_root = "echo from root > /mnt/share/by-root && chmod 640 /mnt/share/by-root"
    assert loop_thread.run(share_guest.run(["sh", "-c", as_root])).status == 0
    st = (share_dir / "by-root").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o640)
    assert (share_dir / "by-root").read_text() == "from root\n"

    as_user = "echo from user > /mnt/share/open/by-user"
    res = loop_thread.run(share_guest.run(["sh", "-c", as_user], user="user"))
    assert res.status == 0, res.stderr
    st = (share_dir / "open" / "by-user").stat()
    assert (st.st_uid, st.st_gid) == (1000, 1000)


def test_share_enforces_the_host_files_acls(share_guest, loop_thread):
    """A mode 0600 root file with an ACL entry for uid 1000: user reads it, nobody cannot."""
    res = loop_thread.run(share_guest.run(["cat", "/mnt/share/acl"], user="user"))
    assert (res.stdout, res.status) == (b"readable through an ACL\n", 0), res.stderr
    res = loop_thread.run(share_guest.run(["cat", "/mnt/share/acl"], user="nobody"))
    assert res.status == 1 and b"Permission denied" in res.stderr


def test_share_makes_only_its_vm_run_qemu_as_root(share_guest, guest, loop_thread):
    def uid(machine):
        pid = loop_thread.run(machine.stats()).pid
        return os.stat(f"/proc/{pid}").st_uid

    assert uid(share_guest.machine) == 0
    assert uid(guest.machine) != 0
