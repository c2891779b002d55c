"""Each VM's own user: QEMU runs as a uid of its own that reaches exactly its VM's disks.

A VM without 9p shares gets a uid from a reserved range (config ``vm_uid_base``,
``vm_uid_count``) and the QEMU group (libvirt-qemu), which lets it traverse the daemon root
(0710 root:group) and libvirt's directories and nothing more. libvirt relabels nothing for
such a VM (static DAC label, relabel='no'): with relabelling on it chowns the kernel and
initrd, which every VM shares, to the VM's user and refuses the next VM with another user
("Setting different DAC user or group on .../vmlinux which is already in use", measured
with libvirt 9.0). Instead each disk gets a POSIX ACL entry for the uid of each VM using it
(read-write for a writable disk, read for a read-only one) and loses its "other" bits, so
one disk serves several VMs (an image's root disk) and no other VM's QEMU opens it. The
agent's sockets are opened by libvirtd and handed to QEMU, in a per-VM directory only root
enters; the console log is written by virtlogd (root).

Leases: the uid a VM holds and the files it was granted are written under
``<root>/vm-users`` (one JSON file per uid) before any grant, and removed once the grants
are revoked when the VM ends. A uid stays reserved while its lease exists, and the
daemon's start revokes the leases of VMs that ended while it was away (a crash, a host
reboot), so a uid is never handed out while files still let it in.
"""

from __future__ import annotations

import contextlib
import functools
import grp
import json
import logging
import os
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hyperd.errors import HyperError, NotFound

from . import acl

log = logging.getLogger(__name__)

#: The groups QEMU runs in under libvirt (Debian's libvirt-qemu, Fedora's qemu): the one
#: that must traverse the daemon root to reach its VM's disks.
QEMU_GROUPS = ("libvirt-qemu", "qemu")
LEASE_DIR = "vm-users"


def qemu_gid() -> int | None:
    """The gid of libvirt's QEMU group, or None when the host has none."""
    for name in QEMU_GROUPS:
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            continue
    return None


@dataclass
class Lease:
    """A uid held by a VM, and the files it may open (path -> writable)."""

    vm: str
    uid: int
    files: dict[str, bool] = field(default_factory=dict)


class VMUsers:
    """The uids of one daemon's VMs and the disk access each was granted. Thread-safe;
    its methods block on the disk (call them in a thread)."""

    def __init__(self, lease_dir: Path, base: int, count: int, gid: int):
        if base <= 0 or count <= 0:
            raise ValueError("vm_uid_base and vm_uid_count must be positive")
        self.lease_dir = Path(lease_dir)
        self.base, self.count, self.gid = base, count, gid
        self._lock = threading.Lock()
        self.lease_dir.mkdir(mode=0o700, exist_ok=True)
        self._leases = {x.uid: x for x in self._load()}
        self._taken: set[int] = set()  # uids this daemon claimed or adopted: never swept

    def _load(self) -> Iterable[Lease]:
        for path in sorted(self.lease_dir.glob("*.json")):
            try:
                data = json.loads(path.read_text())
                yield Lease(str(data["vm"]), int(data["uid"]), dict(data["files"]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable VM user lease %s: %s", path, exc)

    def _save(self, lease: Lease) -> None:
        """Write the lease (atomically, durably) before the access it records exists."""
        path = self.lease_dir / f"{lease.uid}.json"
        tmp = path.with_suffix(".tmp")
        data = json.dumps({"vm": lease.vm, "uid": lease.uid, "files": lease.files})
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _drop(self, uid: int) -> None:
        (self.lease_dir / f"{uid}.json").unlink(missing_ok=True)
        self._leases.pop(uid, None)

    def uids(self) -> dict[int, str]:
        """uid -> VM name, for every lease held."""
        with self._lock:
            return {uid: x.vm for uid, x in self._leases.items()}

    def claim(self, vm: str) -> int:
        """A free uid for a VM about to boot (its lease is written before this returns)."""
        with self._lock:
            busy = set(self._leases) | _process_uids()
            uid = next((u for u in self._range() if u not in busy), None)
            if uid is None:
                raise HyperError(
                    f"no free VM user: all {self.count} uids from {self.base} are in use "
                    "(raise vm_uid_count)"
                )
            lease = Lease(vm, uid)
            self._save(lease)
            self._leases[uid] = lease
            self._taken.add(uid)
            return uid

    def _range(self) -> range:
        return range(self.base, self.base + self.count)

    def adopt(self, vm: str, uid: int, files: dict[str, bool]) -> None:
        """A running VM's uid (from its live XML) and disks: its lease, kept or remade."""
        with self._lock:
            lease = self._leases.get(uid)
            if lease is not None and lease.vm != vm:
                log.warning("VM user %d was leased to %s; %s runs as it", uid, lease.vm, vm)
            lease = Lease(vm, uid, {**(lease.files if lease else {}), **files})
            self._save(lease)
            self._leases[uid] = lease
            self._taken.add(uid)

    def grant(self, uid: int, files: dict[str, bool]) -> None:
        """Let ``uid`` open these files (path -> writable); recorded first."""
        with self._lock:
            lease = self._leases.get(uid)
            if lease is None:
                raise HyperError(f"VM user {uid} holds no lease")
            lease.files.update(files)
            self._save(lease)
            # Under the lock: a grant rewrites the whole ACL, and VMs booting at once share
            # the image's root disk; interleaved, one VM's entry would undo another's.
            for path, writable in files.items():
                try:
                    acl.grant(path, uid, writable)
                except FileNotFoundError:
                    raise NotFound(f"disk {path} does not exist") from None

    def moved(self, uid: int, src: str, dst: str) -> None:
        """A granted file is about to be renamed to ``dst`` (its ACL goes with it): the
        lease records ``dst`` too (``src`` stays: revoking a missing file does nothing)."""
        with self._lock:
            lease = self._leases.get(uid)
            if lease is None or src not in lease.files:
                raise HyperError(f"VM user {uid} was not granted {src}")
            lease.files[dst] = lease.files[src]
            self._save(lease)

    def revoke(self, uid: int, path: str) -> None:
        """Take one file away from ``uid`` (a disk unplugged)."""
        with self._lock:
            acl.revoke(path, uid)
            lease = self._leases.get(uid)
            if lease is not None and lease.files.pop(path, None) is not None:
                self._save(lease)

    def release(self, uid: int) -> None:
        """The VM of ``uid`` has ended: its files let it in no more; the uid is free."""
        with self._lock:
            lease = self._leases.get(uid)
            if lease is None:
                return
            kept = {}
            for path, writable in lease.files.items():
                try:
                    acl.revoke(path, uid)
                except OSError as exc:
                    log.warning("cannot revoke VM user %d's access to %s: %s", uid, path, exc)
                    kept[path] = writable
            if kept:  # the uid stays reserved until a later sweep manages it
                lease.files = kept
                self._save(lease)
                self._taken.discard(uid)
            else:
                self._drop(uid)
                self._taken.discard(uid)

    def sweep(self, running: Collection[int]) -> list[str]:
        """Release the leases this daemon found at its start and did not take up, whose uid
        no running VM has (``running``); returns the VMs whose leases went."""
        with self._lock:
            found = {uid: x.vm for uid, x in self._leases.items() if uid not in self._taken}
        gone = [(uid, vm) for uid, vm in found.items() if uid not in running]
        for uid, vm in gone:
            log.info("VM %s ended while hyperd was away: revoking its user %d", vm, uid)
            self.release(uid)
        return [vm for _, vm in gone]


def _process_uids() -> set[int]:
    """The real uids of the host's processes (a VM of another daemon sharing the range)."""
    out = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with (
                contextlib.suppress(OSError, ValueError, IndexError, StopIteration),
                open(f"/proc/{entry.name}/status") as f,
            ):
                uids = next(line for line in f if line.startswith("Uid:"))
                out.add(int(uids.split()[1]))
    return out


def of(config) -> VMUsers | None:
    """The VM users of the daemon configured by ``config`` (hyperd.config.Config)."""
    return for_daemon(config.root, config.vm_uid_base, config.vm_uid_count)


@functools.cache
def for_daemon(root: str, base: int, count: int) -> VMUsers | None:
    """The VM users of the daemon at ``root``; None (VMs run as libvirt's shared user)
    when they are switched off (``vm_uid_base = 0``), the host has no QEMU group, or the
    root's filesystem takes no ACLs."""
    if base <= 0:
        return None
    gid = qemu_gid()
    if gid is None:
        log.warning("no %s group: VMs run as libvirt's QEMU user", " or ".join(QEMU_GROUPS))
        return None
    if not acl.supported(root):
        log.warning("%s takes no POSIX ACLs: VMs run as libvirt's QEMU user", root)
        return None
    return VMUsers(Path(root) / LEASE_DIR, base, count, gid)
