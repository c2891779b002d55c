"""A full disk under the daemon root: `create` is refused with a 507 naming the disk, leaves
no phantom container (not now, not after a restart), reading commands still answer, the
state database stays sound, and all works again once space returns. A daemon of its own,
its root on a small tmpfs the test mounts."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import time

import pytest

from tests.conftest import failed
from tests.daemon_fixture import LOG_DIR, Daemon
from tests.workdir import qemu_workdir

pytestmark = pytest.mark.vm


@pytest.fixture
def small_root(libvirt_up, guest_assets, request):
    workdir = qemu_workdir("hyperd-full-")
    root = workdir / "root"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(root)], check=True)
    d = Daemon(workdir)
    try:
        d.start()
        d.load_busybox()
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.remove_containers()
            d.stop()
        if failed(request):
            LOG_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copy(d.log, LOG_DIR / f"{request.node.name}.hyperd.log")
        subprocess.run(["umount", "-l", str(root)], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def _fill(path) -> None:
    """Write to ``path`` until the disk is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC


def test_create_on_a_full_disk_is_a_clear_507_and_leaves_nothing(small_root):
    """Container and volume creation are refused naming the disk; nothing half-made stays."""
    d = small_root
    filler = d.root / "filler"
    _fill(filler)
    res = d.hyper("create", "--name", "full", "busybox", "true")
    assert res.returncode == 125, res
    lines = res.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"hyper: no space left on the disk of {d.root} (filesystem {d.root}, "
    ), lines
    assert d.hyper("ps", "-aq").stdout == b""
    res = d.hyper("volume", "create", "full-vol")
    assert res.returncode == 125 and b"no space left on the disk of" in res.stderr, res
    assert d.hyper("volume", "ls", "-q").stdout == b""
    images = d.hyper("images", "-q")
    assert images.returncode == 0 and images.stdout.strip(), images
    d.stop()
    d.start()  # on the full disk
    assert d.hyper("ps", "-aq").stdout == b""  # no phantom after a restart either
    os.unlink(filler)
    res = d.hyper("create", "--name", "full", "busybox", "true")
    assert res.returncode == 0, res.stderr
    assert d.hyper("ps", "-a", "--format", "{{.Names}}").stdout == b"full\n"
    with sqlite3.connect(d.root / "state.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_the_log_waits_for_space_and_loses_nothing(small_root):
    """A container prints numbered lines while the disk fills and frees: the log pump pauses
    (and says so) instead of dying, and `logs` has every line once, in order."""
    d = small_root
    script = "for i in $(seq 1 300); do echo line-$i; usleep 20000; done"
    res = d.hyper("run", "-d", "--name", "chatty", "busybox", "sh", "-c", script)
    assert res.returncode == 0, res.stderr
    filler = d.root / "filler"
    _fill(filler)
    time.sleep(4)
    os.unlink(filler)
    assert d.hyper("wait", "chatty").stdout == b"0\n"
    lines = d.hyper("logs", "chatty").stdout.decode().split()
    assert lines == [f"line-{i}" for i in range(1, 301)]
    log = d.log.read_text()
    assert "the disk is full; output waits for space" in log
    assert "space is back; output goes on" in log
