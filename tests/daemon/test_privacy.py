"""Secrets at rest: a local user who is not root reads nothing of the daemon's root or run
dir (containers' disks, logs, the state database with their environment), as Docker keeps
/var/lib/docker 0710. Real daemon, real VM."""

from __future__ import annotations

import subprocess
import uuid

import pytest

pytestmark = pytest.mark.vm
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def _as_nobody(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NOBODY, *cmd], capture_output=True, timeout=60)


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
