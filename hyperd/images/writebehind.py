"""Root disks made durable after they are in use, not before.

A root disk is derived data: the blobs it is built from were synced when they were
stored, and ``ImageService.rootfs_path`` builds a missing disk again from them. So a
finished disk is renamed into place, and can be used, at once; its fsync (50-60 ms for a
100 MB disk here, a tenth of its pull) runs on a thread.

A host crash after the rename but before that fsync ends could leave a disk with the right
name and blocks never written. So, before the rename, a marker holding the host's boot id
is created in the same directory (``.<disk>.<random>.unsynced``); once the disk is synced,
the marker goes. This leans on one property of journaling filesystems (ext4, xfs): changes
to names reach the disk in the order they were made. A rename that survived a crash means
the marker made before it did too, and a marker removed means the rename was kept.

``recover()``, at daemon start, reads what markers are left:
- one written in this boot (the daemon stopped, the host did not): the disk's data is in
  the page cache, so it is synced now and kept;
- one from another boot, or empty (its own data never reached the disk): the disk cannot be
  trusted and is deleted; its next use builds it again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from pathlib import Path

from hyperd.images.store import fsync_path

log = logging.getLogger(__name__)

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
SUFFIX = ".unsynced"


def boot_id() -> str:
    """This boot of the host (a new random id each boot)."""
    return BOOT_ID.read_text().strip()


class WriteBehind:
    """Publishes finished files in ``directory`` and syncs them in the background."""

    def __init__(self, directory: Path):
        self.dir = directory
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def marker(self, out: Path) -> Path:
        """A new marker to say ``out`` may not be on disk yet: one per publish, so the
        sync of a disk deleted and built again cannot take the new disk's marker."""
        return self.dir / f".{out.name}.{secrets.token_hex(4)}{SUFFIX}"

    def markers(self) -> list[Path]:
        """The markers there are now."""
        return list(self.dir.glob(f".*{SUFFIX}"))

    def publish(self, tmp: Path, out: Path) -> None:
        """Rename the finished ``tmp`` onto ``out`` (both in this directory) now; sync it
        on a thread. Python waits for those threads at exit; ``flush`` waits for them."""
        marker = self.marker(out)
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            marker.write_text(boot_id())
            os.replace(tmp, out)
        except BaseException:
            os.close(fd)
            marker.unlink(missing_ok=True)
            raise
        thread = threading.Thread(target=self._sync, args=(fd, marker), name=f"sync {out.name}")
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _sync(self, fd: int, marker: Path) -> None:
        try:
            os.fsync(fd)
            marker.unlink(missing_ok=True)
        except OSError as exc:  # the marker stays: the next start judges the disk
            log.warning("root disk not synced (%s); checked again at the next start", exc)
        finally:
            os.close(fd)
            with self._lock:
                self._threads.discard(threading.current_thread())

    def flush(self) -> None:
        """Wait until every file published so far is synced."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join()

    def recover(self) -> None:
        """Settle the markers a previous daemon left (see the module's docstring)."""
        now = boot_id()
        for marker in self.markers():
            disk = self.dir / marker.name[1 : -len(SUFFIX)].rpartition(".")[0]
            try:
                written = marker.read_text().strip()
            except OSError:
                written = ""
            with contextlib.suppress(FileNotFoundError):
                if written == now:
                    fsync_path(disk)
                else:
                    log.warning("%s: may not have reached the disk before a crash; rebuilt "
                                "at its next use", disk.name)  # fmt: skip
                    disk.unlink()
            marker.unlink(missing_ok=True)
