"""Root disks synced after they are published (hyperd/images/writebehind.py): a finished
disk is usable at once, and one a host crash may have left unwritten is never trusted."""

from __future__ import annotations

import os
import uuid

import pytest

from hyperd.images import ImageService, writebehind
from hyperd.images.writebehind import WriteBehind

from .imagebuilder import build_image, f

EROFS_MAGIC = (0xE0F5E1E2).to_bytes(4, "little")  # the superblock's, at byte 1024


def _published(tmp_path, data: bytes = b"disk"):
    wb = WriteBehind(tmp_path)
    tmp, out = tmp_path / ".disk.tmp", tmp_path / "disk.erofs"
    tmp.write_bytes(data)
    return wb, tmp, out


def test_publish_renames_at_once_and_drops_the_marker_once_synced(tmp_path, monkeypatch):
    """The file is in place when publish returns; its fsync runs on a thread, and only
    after it does the marker go."""
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(writebehind.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    wb, tmp, out = _published(tmp_path)
    wb.publish(tmp, out)
    assert out.read_bytes() == b"disk" and not tmp.exists()
    wb.flush()
    assert len(synced) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.erofs"]


def test_a_disk_published_again_before_its_sync_keeps_a_marker_of_its_own(tmp_path):
    """rmi and a new pull of the same image may publish one name twice within a sync:
    each publish has its own marker, which only its own sync removes."""
    wb, tmp, out = _published(tmp_path)
    first = wb.marker(out)
    assert first != wb.marker(out) and first.name.startswith(".disk.erofs.")
    wb.publish(tmp, out)
    tmp.write_bytes(b"disk again")
    wb.publish(tmp, out)
    wb.flush()
    assert out.read_bytes() == b"disk again" and wb.markers() == []


def test_a_failed_rename_leaves_no_marker(tmp_path):
    wb, tmp, out = _published(tmp_path)
    tmp.unlink()
    with pytest.raises(FileNotFoundError):
        wb.publish(tmp, out)
    assert list(tmp_path.iterdir()) == []


def test_recover_keeps_and_syncs_a_disk_of_this_boot(tmp_path):
    """The daemon stopped before the sync; the host did not: the data is in the page
    cache, so the disk stays (synced now) and the marker goes."""
    wb = WriteBehind(tmp_path)
    (tmp_path / "disk.erofs").write_bytes(b"disk")
    wb.marker(tmp_path / "disk.erofs").write_text(writebehind.boot_id() + "\n")
    wb.recover()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.erofs"]


@pytest.mark.parametrize("written", [str(uuid.uuid4()), ""], ids=["other boot", "empty"])
def test_recover_deletes_a_disk_a_crash_may_have_left_unwritten(tmp_path, written):
    """A marker from another boot, or one whose own bytes never reached the disk: the
    disk's blocks may never have been written, so it goes, with its marker."""
    wb = WriteBehind(tmp_path)
    (tmp_path / "disk.erofs").write_bytes(b"\0" * 4096)
    (tmp_path / "other.erofs").write_bytes(b"synced long ago")
    wb.marker(tmp_path / "disk.erofs").write_text(written)
    wb.recover()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.erofs"]


def test_recover_drops_a_marker_whose_disk_is_gone(tmp_path):
    wb = WriteBehind(tmp_path)
    wb.marker(tmp_path / "gone.erofs").write_text(writebehind.boot_id())
    wb.recover()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.registry
def test_a_disk_left_unsynced_by_a_crash_is_built_again_at_its_next_use(tmp_path, registry, repo):
    """A pull publishes the disk (marker, then rename); after a host crash (simulated:
    the marker is put back, naming another boot, and the disk's blocks are zeros) the next
    daemon start drops the disk and the next use builds a sound one from the blobs."""
    registry.pusher().push_image(repo, "t", build_image([[f("a", "a" * 5000)]]))
    svc = ImageService(tmp_path / "store")
    rec = svc.pull(f"{registry.host}/{repo}:t")
    svc.writebehind.flush()
    disk = svc.rootfs_path(rec.id)
    assert disk.read_bytes()[1024:1028] == EROFS_MAGIC
    assert not svc.writebehind.markers()

    disk.chmod(0o644)
    disk.write_bytes(b"\0" * disk.stat().st_size)
    svc.writebehind.marker(disk).write_text(str(uuid.uuid4()))
    again = ImageService(tmp_path / "store")
    assert not disk.exists() and [r.id for r in again.list()] == [rec.id]
    assert again.rootfs_path(rec.id).read_bytes()[1024:1028] == EROFS_MAGIC
    again.writebehind.flush()
    assert not again.writebehind.markers()
