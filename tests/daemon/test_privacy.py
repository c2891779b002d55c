"""Secrets at rest: a local user who is not root reads nothing of the daemon's root or run
dir (containers' disks, logs, the state database with their environment), as Docker keeps
/var/lib/docker 0710; and each VM's QEMU runs as a user of its own that opens its own
disks and no other container's. Real daemon, real VMs."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from hyperd.config import Config
from hyperd.vm import acl, users

pytestmark = pytest.mark.vm
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
VM_UIDS = range(Config.vm_uid_base, Config.vm_uid_base + Config.vm_uid_count)


def _as_nobody(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NOBODY, *cmd], capture_output=True, timeout=60)


def _as_vm_user(uid: int, path: Path, write: bool = False) -> subprocess.CompletedProcess:
    """Open ``path`` as QEMU of the VM of ``uid`` would: that uid, libvirt's QEMU group."""
    redirect = "<>" if write else "<"
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={users.qemu_gid()}", "--clear-groups", "--",
         "/bin/sh", "-c", f'exec 3{redirect} "$1"', "sh", str(path)],
        capture_output=True, timeout=60,
    )  # fmt: skip


def _qemu_uid(vm: str) -> int:
    """The real uid QEMU of domain ``vm`` runs as."""
    pid = Path(f"/run/libvirt/qemu/{vm}.pid").read_text().strip()
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("Uid:")).split()[1])


def _container(hyperd, name: str) -> tuple[str, Path]:
    """A running container's VM and writable disk."""
    res = hyperd.hyper("inspect", name)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)[0]
    return info["Hyper"]["VM"], hyperd.root / "containers" / info["Id"] / "rw.ext4"


def test_a_local_user_reads_nothing_of_the_root_or_run_dir(hyperd):
    """After a container wrote a secret to its disk and got one in its environment, the
    unprivileged `nobody` finds no readable file under the root or run dir, cannot list them,
    and a grep for either secret finds nothing; QEMU (its own user) still reached its disks."""
    name = f"secret-{uuid.uuid4().hex[:8]}"
    res = hyperd.hyper(
        "run", "--name", name, "-e", "DB_PASSWORD=pa55-env", "busybox",
        "sh", "-c", "echo s3cr3t-disk > /secret; sync; echo ran",
    )  # fmt: skip
    try:
        assert (res.returncode, res.stdout) == (0, b"ran\n"), res.stderr
        for top in (hyperd.root, hyperd.run_dir):
            listed = _as_nobody("ls", str(top))
            assert listed.returncode != 0 and b"Permission denied" in listed.stderr
            found = _as_nobody("find", str(top), "-readable", "-type", "f")
            assert found.stdout == b"", found.stdout
        for secret in ("s3cr3t-disk", "pa55-env"):
            grep = _as_nobody("grep", "-rl", secret, str(hyperd.root))
            assert grep.stdout == b"" and grep.returncode == 2, (secret, grep)
        state = _as_nobody("cat", str(hyperd.root / "state.db"))
        assert state.returncode != 0 and b"Permission denied" in state.stderr
        assert hyperd.root.stat().st_mode & 0o777 == 0o710
        assert (hyperd.run_dir.stat().st_mode & 0o777, hyperd.socket.stat().st_mode & 0o777) == (
            0o711,
            0o660,
        )
    finally:
        hyperd.hyper("rm", "-f", name)


def test_each_vm_runs_as_its_own_user_that_opens_its_own_disk_only(hyperd):
    """Two VMs: their QEMUs run as two uids of the reserved range; each uid opens its own
    writable disk and is refused the other's (and the other's agent sockets). A daemon
    restart keeps both uids taken; a stopped VM's uid no longer opens its disk."""
    names = [f"own-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    try:
        for name in names[:2]:
            res = hyperd.hyper("run", "-d", "--name", name, "busybox", "sleep", "600")
            assert res.returncode == 0, res.stderr
        (vm_a, disk_a), (vm_b, disk_b) = (_container(hyperd, n) for n in names[:2])
        uid_a, uid_b = _qemu_uid(vm_a), _qemu_uid(vm_b)
        assert uid_a != uid_b and {uid_a, uid_b} <= set(VM_UIDS)
        assert _as_vm_user(uid_a, disk_a, write=True).returncode == 0
        for uid, other in ((uid_a, disk_b), (uid_b, disk_a)):
            refused = _as_vm_user(uid, other)
            assert refused.returncode != 0 and b"Permission denied" in refused.stderr
        sock_b = hyperd.run_dir / "vms" / vm_b / "control.sock"
        assert b"Permission denied" in _as_vm_user(uid_a, sock_b, write=True).stderr

        hyperd.stop(signal.SIGTERM)  # the VMs run on; their uids stay theirs
        hyperd.start()
        res = hyperd.hyper("run", "-d", "--name", names[2], "busybox", "sleep", "600")
        assert res.returncode == 0, res.stderr
        uid_c = _qemu_uid(_container(hyperd, names[2])[0])
        assert uid_c in VM_UIDS and uid_c not in (uid_a, uid_b)

        assert hyperd.hyper("stop", "-t", "1", names[0]).returncode == 0
        deadline = time.monotonic() + 30  # the VM is torn down in the background
        while uid_a in acl.named_users(disk_a) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert uid_a not in acl.named_users(disk_a)
        assert b"Permission denied" in _as_vm_user(uid_a, disk_a).stderr
    finally:
        for name in names:
            hyperd.hyper("rm", "-f", name)
