"""Container logs that never fill the disk: one writer per container, descriptors released,
rotation with --log-opt, --log-driver none, and bounded memory under a flood."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm
IMG = "busybox"


def _name() -> str:
    return f"l-{uuid.uuid4().hex[:8]}"


def _fds(pid: int) -> list[str]:
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out.append(os.readlink(fd))
        except FileNotFoundError:
            continue
    return out


def _settled_fds(pid: int, want: int, timeout: float = 15) -> int:
    """The daemon's descriptor count once it stops changing (or reaches ``want``)."""
    deadline = time.monotonic() + timeout
    count = len(_fds(pid))
    while count > want and time.monotonic() < deadline:
        time.sleep(0.5)
        count = len(_fds(pid))
    return count


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_descriptors_return_to_baseline_after_crash_loops_chatty_rm_execs_and_attaches(docker):
    pid = docker.daemon.proc.pid
    baseline = _settled_fds(pid, 0, timeout=2)

    loop = _name()  # a crash loop: one log writer across its restarts
    docker.ok("run", "-d", "--name", loop, "--restart", "always", IMG, "sh", "-c",
                     "echo up; exit 1")  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        restarts = int(docker.ok("inspect", "-f", "{{.RestartCount}}", loop))
        if restarts >= 3:
            break
        time.sleep(1)
    assert restarts >= 3
    log_path = docker.ok("inspect", "-f", "{{.LogPath}}", loop).strip()
    assert sum(1 for f in _fds(pid) if f == log_path) <= 1

    chatty = _name()  # megabytes of output, removed while its log is open
    docker.ok("run", "-d", "--name", chatty, IMG, "sh", "-c",
                     "head -c 6000000 /dev/zero | od; sleep 600")  # fmt: skip
    time.sleep(5)
    sleeper = _name()
    docker.ok("run", "-d", "--name", sleeper, IMG, "sleep", "600")
    for _ in range(20):  # an exec storm
        assert docker("exec", sleeper, "true").returncode == 0
    for _ in range(5):  # attach/detach cycles
        proc = docker.popen(
            "attach",
            sleeper,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)
        proc.kill()
        proc.wait()
    docker.ok("rm", "-f", loop, chatty, sleeper)
    after = _settled_fds(pid, baseline)
    leaked = [f for f in _fds(pid) if "(deleted)" in f]
    assert not leaked, leaked
    assert after <= baseline, (baseline, after, _fds(pid))


def test_log_opts_rotate_and_logs_read_across_files(docker):
    name = _name()
    docker.ok("run", "--name", name, "--log-opt", "max-size=20k", "--log-opt",
                     "max-file=4", IMG, "sh", "-c",
                     "i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done")  # fmt: skip
    log_path = Path(docker.ok("inspect", "-f", "{{.LogPath}}", name).strip())
    files = sorted(log_path.parent.glob("container.log*"))
    assert len(files) == 4 and all(f.stat().st_size <= 20 * 1024 for f in files)
    lines = docker.ok("logs", name).splitlines()
    numbers = [int(x.split()[1]) for x in lines]
    assert numbers == list(range(numbers[0], 20000)) and numbers[0] > 0  # oldest rotated away
    assert docker.ok("logs", "--tail", "2", name) == "line 19998\nline 19999\n"
    docker.ok("rm", name)


def test_log_driver_none_keeps_nothing_and_bad_opts_are_refused(docker):
    name = _name()
    res = docker("run", "--name", name, "--log-driver", "none", IMG, "echo", "shown")
    assert res.returncode == 0 and res.stdout == b"shown\n"  # attached output still flows
    logs = docker("logs", name)
    assert logs.returncode == 1 and b"none" in logs.stderr
    docker.ok("rm", name)
    bad = docker("run", "--rm", "--log-opt", "max-size=huge", IMG, "true")
    assert bad.returncode == 125 and b"huge" in bad.stderr


def test_daemon_memory_stays_bounded_under_an_output_flood(docker):
    """A guest printing as fast as it can for 20 s, logged and attached by a slow reader."""
    pid = docker.daemon.proc.pid
    name = _name()
    docker.ok("run", "-d", "--name", name, "--log-opt", "max-size=5m", "--log-opt",
                     "max-file=2", IMG, "yes", "flood flood flood flood flood")  # fmt: skip
    slow = docker.popen(  # attached, reading slowly: back-pressure, not buffering
        "attach",
        "--no-stdin",
        name,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    start = _rss_kib(pid)
    peak = start
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        slow.stdout.read(4096)
        time.sleep(0.05)
        peak = max(peak, _rss_kib(pid))
    slow.kill()
    slow.wait()
    log_dir = Path(docker.ok("inspect", "-f", "{{.LogPath}}", name).strip()).parent
    total = sum(f.stat().st_size for f in log_dir.glob("container.log*"))
    docker.ok("rm", "-f", name)
    assert total <= 10 * 1024 * 1024 + 64 * 1024
    assert peak - start < 64 * 1024, f"RSS grew from {start} KiB to {peak} KiB"
