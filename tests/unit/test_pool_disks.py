"""Which disks a pool VM already holds for a sandbox and which serial each requested disk
gets (hyperd.sandbox.disks), and how a never-used writable layer is told from a used one."""

from __future__ import annotations

import asyncio
import os
import subprocess

from hyperd.containers.create import make_writable_disk, writable_disk_blank
from hyperd.sandbox.disks import Held, file_key, free_serial, live_serials, plan
from hyperd.vm.designer import MAX_SERIAL, DiskSpec

IMAGE_A, IMAGE_B = "/images/a.erofs", "/images/b.erofs"
POOL_RW, CTR_RW = "/pool/vm1/rw.ext4", "/containers/c1/rw.ext4"


def _held(image: str | None = IMAGE_A) -> list[Held]:
    out = [Held(DiskSpec(image, "image", True, shared=True), (1, 2))] if image else []
    return [*out, Held(DiskSpec(POOL_RW, "rw", blank=True))]


def _request(image: str = IMAGE_A, blank: bool = True, volume: bool = False) -> list[DiskSpec]:
    out = [DiskSpec(image, "image", True, shared=True), DiskSpec(CTR_RW, "rw", blank=blank)]
    return [*out, DiskSpec("/volumes/v/disk.ext4", "vol2")] if volume else out


def test_same_image_and_a_blank_layer_need_no_hot_plug():
    """The held image disk is used as it is, the held blank disk moves onto the layer."""
    got = plan(_request(volume=True), _held())
    assert got.moves == [(POOL_RW, CTR_RW)]
    assert [(d.path, d.serial) for d in got.plugs] == [("/volumes/v/disk.ext4", "vol2")]
    assert got.serials == {"image": "image", "rw": "rw", "vol2": "vol2"}


def test_another_image_is_plugged_on_a_free_serial():
    """A container of another image gets its root disk hot-plugged as image-1 (the held
    one stays, unused); its blank layer still takes the held blank disk."""
    got = plan(_request(IMAGE_B), _held())
    assert got.moves == [(POOL_RW, CTR_RW)]
    assert [(d.path, d.serial, d.readonly) for d in got.plugs] == [(IMAGE_B, "image-1", True)]
    assert got.serials == {"image": "image-1", "rw": "rw"}


def test_a_used_layer_is_plugged_and_the_blank_disk_left_alone():
    """A layer that has been mounted before (a second start) is not replaced by a blank
    disk: it is hot-plugged on a serial of its own."""
    got = plan(_request(blank=False), _held())
    assert got.moves == []
    assert [(d.path, d.serial) for d in got.plugs] == [(CTR_RW, "rw-1")]
    assert got.serials == {"image": "image", "rw": "rw-1"}


def test_a_pool_vm_with_no_image_and_a_blank_disk_on_another_filesystem():
    """No image held: the root disk is plugged on its own serial; a blank disk that cannot
    be renamed onto the layer (another filesystem) is not used."""
    got = plan(_request(), _held(None), can_move=lambda _src, _dst: False)
    assert got.moves == []
    assert [(d.path, d.serial) for d in got.plugs] == [(IMAGE_A, "image"), (CTR_RW, "rw-1")]


def test_no_held_disks_plugs_everything_on_its_own_serial():
    """A pool VM that holds nothing (or a cold boot's request) changes no serial."""
    got = plan(_request(volume=True), [])
    assert got.moves == []
    assert [d.serial for d in got.plugs] == ["image", "rw", "vol2"]
    assert got.serials == {"image": "image", "rw": "rw", "vol2": "vol2"}


def test_a_writable_disk_never_uses_a_held_shared_one():
    """Only a read-only request reuses a shared disk (same file, read-only)."""
    got = plan([DiskSpec(IMAGE_A, "image")], _held())
    assert got.plugs == [DiskSpec(IMAGE_A, "image-1")]


def test_free_serial_stays_within_the_virtio_limit():
    assert free_serial("rw", set()) == "rw"
    assert free_serial("rw", {"rw", "rw-1"}) == "rw-2"
    long = "x" * MAX_SERIAL
    got = free_serial(long, {long})
    assert got == "x" * (MAX_SERIAL - 2) + "-1" and len(got.encode()) <= MAX_SERIAL


def test_live_serials_after_a_restart():
    """From a running pool VM's disks: a plugged disk is found by its path; the layer that
    took the blank disk's place (its file moved, the XML names the pool's path) keeps the
    serial it asked for."""
    live = [(IMAGE_A, "image"), (POOL_RW, "rw"), (IMAGE_B, "image-1")]
    assert live_serials(_request(IMAGE_B), live) == {"image": "image-1", "rw": "rw"}
    live = [(IMAGE_A, "image"), (POOL_RW, "rw"), (CTR_RW, "rw-1")]
    assert live_serials(_request(blank=False), live) == {"image": "image", "rw": "rw-1"}


def test_a_held_shared_disk_is_intact_until_its_file_goes_or_is_replaced(tmp_path):
    """rmi deletes the root disk; a later pull of the same image makes a new file at the
    same path: neither is the file the pool VM opened (and holds open, as here, so its
    inode number is not reused)."""
    path = tmp_path / "img.erofs"
    path.write_bytes(b"one")
    held = Held(DiskSpec(str(path), "image", True, shared=True), file_key(str(path)))
    with open(path, "rb"):  # QEMU's descriptor
        assert held.intact()
        path.unlink()
        assert not held.intact()
        (tmp_path / "new").write_bytes(b"one")
        os.replace(tmp_path / "new", path)
        assert file_key(str(path)) is not None and not held.intact()
    assert Held(DiskSpec(str(tmp_path / "gone"), "rw", blank=True)).intact()


def test_a_writable_layer_is_blank_until_mounted(tmp_path):
    """As made, the layer is blank; once a kernel has mounted it read-write (mount count
    and time in the superblock, set here with debugfs as ext4 sets them) it is not;
    a file that is not ext4, or is missing, is not blank."""
    disk = tmp_path / "rw.ext4"
    asyncio.run(make_writable_disk(disk))
    assert writable_disk_blank(disk)
    subprocess.run(
        ["debugfs", "-w", "-R", "ssv mnt_count 1", str(disk)], check=True, capture_output=True
    )
    assert not writable_disk_blank(disk)
    other = tmp_path / "other.ext4"
    asyncio.run(make_writable_disk(other))
    subprocess.run(
        ["debugfs", "-w", "-R", "ssv mtime 20260101000000", str(other)],
        check=True,
        capture_output=True,
    )
    assert not writable_disk_blank(other)
    (tmp_path / "junk").write_bytes(b"\0" * 4096)
    assert not writable_disk_blank(tmp_path / "junk")
    assert not writable_disk_blank(tmp_path / "missing")
