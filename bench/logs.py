"""Container logs against the daemon's descriptors, disk and memory.

    python bench/logs.py [--seconds 60] [--repo PATH]

Starts a throwaway hyperd (from this checkout, or from another one with --repo, e.g. an
older commit for a before/after comparison) and, through docker-py (which every version of
hyperd serves):
- crash loop: a `--restart always` container that exits at once, left until it restarted 5
  times: the daemon's descriptors on its log, then after `rm -f`;
- chatty: a container that prints 60 MB, removed with `rm -f`: descriptors the daemon still
  holds on deleted files (disk space that never comes back);
- flood: `yes` for --seconds with max-size=10m/max-file=2 (ignored by daemons without
  rotation): the daemon's RSS peak beside its idle RSS (the baseline, same run), and the log
  bytes left on disk.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.summary import record  # noqa: E402
from tests.workdir import qemu_workdir  # noqa: E402

MiB = 1 << 20


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _fds(pid: int) -> list[str]:
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):
            out.append(os.readlink(fd))
    return out


def _deleted_bytes(pid: int) -> tuple[int, int]:
    count = size = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if "(deleted)" in os.readlink(fd):
                count += 1
                size += os.stat(fd).st_size
        except FileNotFoundError:
            pass
    return count, size


def start_daemon(repo: Path, work: Path) -> tuple[subprocess.Popen, docker.DockerClient]:
    sock = work / "run" / "hyperd.sock"
    config = work / "config"
    config.write_text(
        f'root = "{work / "root"}"\nrun_dir = "{work / "run"}"\nsocket = "{sock}"\n'
        f'kernel = "{repo / "build" / "vmlinux"}"\ninitrd = "{repo / "build" / "initrd.img"}"\n'
        'bridge = ""\n'
    )
    log = open(work / "hyperd.log", "wb")  # noqa: SIM115 - the daemon writes it
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hyperd.main", "--config", str(config)],
        stdout=log,
        stderr=log,
        cwd=repo,
        env=env,
    )
    deadline = time.time() + 30
    while True:
        try:
            client = docker.DockerClient(base_url=f"unix://{sock}", timeout=300)
            client.ping()
            break
        except Exception:  # noqa: BLE001 - not up yet
            if time.time() > deadline or proc.poll() is not None:
                sys.exit(f"hyperd did not start; see {work / 'hyperd.log'}")
            time.sleep(0.2)
    archive = work / "busybox.tar"
    subprocess.run(
        [sys.executable, "-m", "hyperd.images.builtin", "busybox", str(archive)],
        check=True,
        cwd=ROOT,
    )
    with open(archive, "rb") as f:
        client.images.load(f.read())
    return proc, client


def crash_loop(client, pid: int) -> dict:
    c = client.containers.run(
        "busybox", ["sh", "-c", "echo up; exit 1"], detach=True, restart_policy={"Name": "always"}
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        c.reload()
        if c.attrs["RestartCount"] >= 5:
            break
        time.sleep(1)
    log_path = c.attrs["LogPath"]
    on_log = sum(1 for f in _fds(pid) if f == log_path)
    c.remove(force=True)
    return {"restarts": c.attrs["RestartCount"], "fds_on_log": on_log}


def chatty(client, pid: int) -> dict:
    c = client.containers.run(
        "busybox", ["sh", "-c", "head -c 45000000 /dev/zero | od -v; sleep 600"], detach=True
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        c.reload()
        if Path(c.attrs["LogPath"]).exists() and Path(c.attrs["LogPath"]).stat().st_size > 60 * MiB:
            break
        time.sleep(1)
    c.remove(force=True)
    time.sleep(2)
    count, size = _deleted_bytes(pid)
    return {"deleted_fds": count, "deleted_mib": size / MiB}


def flood(client, pid: int, seconds: float) -> dict:
    idle = _rss(pid)
    c = client.containers.run(
        "busybox",
        ["yes", "flood flood flood flood flood flood"],
        detach=True,
        log_config={"Type": "json-file", "Config": {"max-size": "10m", "max-file": "2"}},
    )
    peak, deadline = idle, time.time() + seconds
    while time.time() < deadline:
        peak = max(peak, _rss(pid))
        time.sleep(0.5)
    c.reload()
    log_dir = Path(c.attrs["LogPath"]).parent
    on_disk = sum(f.stat().st_size for f in log_dir.glob("container.log*"))
    c.remove(force=True)
    return {"idle_mib": idle / MiB, "peak_mib": peak / MiB, "log_mib": on_disk / MiB}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--repo", type=Path, default=ROOT, help="checkout whose hyperd to run")
    args = ap.parse_args()
    work = qemu_workdir("hyper-bench-logs-")
    proc, client = start_daemon(args.repo.resolve(), work)
    try:
        client.close()  # its keep-alive connections would count as the daemon's descriptors
        time.sleep(1)
        base = len(_fds(proc.pid))
        client = docker.DockerClient(base_url=f"unix://{work / 'run' / 'hyperd.sock'}", timeout=300)
        loop = crash_loop(client, proc.pid)
        chat = chatty(client, proc.pid)
        fl = flood(client, proc.pid, args.seconds)
        client.close()
        time.sleep(3)
        after = len(_fds(proc.pid))
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"hyperd from {args.repo}")
    print(f"{'measure':44} {'value':>10}")
    print(f"{'descriptors at start (baseline)':44} {base:>10}")
    print(f"{'restarts in the crash loop':44} {loop['restarts']:>10}")
    print(f"{'descriptors on its log after them':44} {loop['fds_on_log']:>10}")
    print(f"{'deleted files held after rm -f of chatty':44} {chat['deleted_fds']:>10}")
    print(f"{'  their size (MiB)':44} {chat['deleted_mib']:>10.1f}")
    print(f"{'descriptors at the end':44} {after:>10}  ({after - base:+d} vs baseline)")
    print(f"{'RSS idle (MiB, baseline)':44} {fl['idle_mib']:>10.1f}")
    print(f"{f'RSS peak in a {args.seconds:.0f} s flood (MiB)':44} {fl['peak_mib']:>10.1f}"
          f"  ({fl['peak_mib'] / fl['idle_mib']:.2f}x idle)")  # fmt: skip
    print(f"{'log on disk after the flood (MiB)':44} {fl['log_mib']:>10.1f}")
    record("logs", "daemon descriptors after the runs", after, "fds", base, "at start")
    record("logs", "daemon RSS peak in a log flood", fl["peak_mib"], "MiB", fl["idle_mib"], "idle")


if __name__ == "__main__":
    main()
