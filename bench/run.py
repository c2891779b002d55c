"""`hyper run` and `hyper exec` latency and idle memory, beside the bare-QEMU floor.

    python bench/run.py [-n 5]

Starts its own hyperd (temporary root and socket) with the built-in busybox image, then
measures, as a user would (the `hyper` CLI in a subprocess):
- run:  cold `hyper run --rm busybox true` (a VM booted and torn down per run)
- warm: the same with the VM pool (``factory = "cache:1"``, a second daemon): a booted VM
        takes the container; each run waits until the pool has refilled
- clone: the same with the VM template and no pool (``factory = "template"``, a third
        daemon): each run's VM is a new clone of the template
- exec: `hyper exec C true` in a running container
- RSS:  resident memory of each idle container's QEMU process, 5 containers running
and, in the same run, the floor of bench/boot.py (bare QEMU booting the same kernel to a
static init that powers off). Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.boot import boot_floor, floor_initrd  # noqa: E402
from bench.summary import record  # noqa: E402
from hyperctl.client import APIClient  # noqa: E402
from hyperd.vm import accel  # noqa: E402
from tests.workdir import qemu_workdir  # noqa: E402

# What the installed `hyper` script runs (pyproject's entry point), from this checkout.
HYPER_CLI = [sys.executable, "-c", "from hyperctl.cli import main; main()"]


def compile_cli() -> None:
    """Byte-compile the CLI's packages, as `pip install` does, so the figures do not hang on
    whether this shell lets Python cache bytecode: with PYTHONDONTWRITEBYTECODE set (as on
    these machines) and no cache, every command compiled every module it imported."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "hyperctl", "hyperapi"], check=True, cwd=ROOT
    )


class Daemon:
    """A throwaway hyperd."""

    def __init__(self, work: Path, factory: str = "none"):
        compile_cli()
        self.work, self.socket = work, work / "run" / "hyperd.sock"
        config = work / "config"
        config.write_text(
            f'root = "{work / "root"}"\nrun_dir = "{work / "run"}"\nsocket = "{self.socket}"\n'
            f'kernel = "{ROOT / "build" / "vmlinux"}"\ninitrd = "{ROOT / "build" / "initrd.img"}"\n'
            f'factory = "{factory}"\n'
        )
        log = open(work / "hyperd.log", "wb")  # noqa: SIM115 - the daemon writes it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hyperd.main", "--config", str(config)],
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )
        deadline = time.time() + 30
        while self.hyper("version", check=False).returncode != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                sys.exit(f"hyperd did not start; see {work / 'hyperd.log'}")
            time.sleep(0.2)

    def hyper(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "HYPER_HOST": f"unix://{self.socket}"}
        res = subprocess.run([*HYPER_CLI, *args], env=env, capture_output=True, cwd=ROOT)
        if check and res.returncode != 0:
            sys.exit(f"hyper {' '.join(args)} failed: {res.stderr.decode()}")
        return res

    def timed(self, *args: str) -> float:
        t0 = time.perf_counter()
        self.hyper(*args)
        return time.perf_counter() - t0

    def pool_ready(self, timeout: float = 120) -> None:
        """Wait until the VM pool has a VM booted and waiting."""
        deadline = time.time() + timeout
        while True:
            out = self.hyper("info", "--format", "{{.Hyper.VMPool.Ready}}").stdout.strip()
            if out not in (b"", b"0") or time.time() > deadline:
                return
            time.sleep(0.2)

    def pool_full(self, timeout: float = 600) -> float:
        """Wait until the VM pool holds as many ready VMs as its size; seconds waited."""
        t0 = time.time()
        fmt = "{{.Hyper.VMPool.Ready}} {{.Hyper.VMPool.Size}}"
        while len(set(self.hyper("info", "--format", fmt).stdout.split())) > 1:
            if time.time() - t0 > timeout:
                sys.exit(f"pool not full after {timeout:.0f} s; see {self.work / 'hyperd.log'}")
            time.sleep(0.5)
        return time.time() - t0

    def template_ready(self, timeout: float = 180) -> None:
        """Wait until the daemon's VM template is made (``factory = "template"``)."""
        deadline = time.time() + timeout
        fmt = "{{.Hyper.VMTemplate}}"
        while self.hyper("info", "--format", fmt).stdout.strip() != b"ready":
            if time.time() > deadline:
                sys.exit(f"no template after {timeout:.0f} s; see {self.work / 'hyperd.log'}")
            time.sleep(0.2)

    def vm_of(self, cid: str) -> str:
        """The libvirt domain a container runs in."""
        return self.hyper("inspect", "--format", "{{.Hyper.VM}}", cid).stdout.decode().strip()

    def stop(self) -> None:
        for c in self.hyper("ps", "-aq", check=False).stdout.decode().split():
            self.hyper("rm", "-f", c, check=False)
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def exec_via_api(socket: Path, cid: str) -> float:
    """Seconds for exec create + start + exit code through the client library."""
    client = APIClient(f"unix://{socket}")
    t0 = time.perf_counter()
    eid = client.exec_create(cid, ["true"])["Id"]
    conn = client.exec_start(eid)
    for _ in conn.chunks():
        pass
    code = client.exec_inspect(eid)["ExitCode"]
    elapsed = time.perf_counter() - t0
    assert code == 0, code
    return elapsed


def qemu_rss_mib(vm: str) -> float:
    """Resident memory of a domain's QEMU process."""
    pid = Path(f"/run/libvirt/qemu/{vm}.pid").read_text().strip()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _loaded(daemon: Daemon) -> Daemon:
    """The daemon with the built-in busybox image loaded."""
    tar = daemon.work / "bb.tar"
    subprocess.run(
        [sys.executable, "-m", "hyperd.images.builtin", "busybox", str(tar)], check=True, cwd=ROOT
    )
    daemon.hyper("load", "-i", str(tar))
    return daemon


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5)
    args = ap.parse_args()
    subprocess.run([str(ROOT / "tools" / "start-libvirt.sh")], check=True)
    work = qemu_workdir("hyper-bench-run-")
    daemon = None
    try:
        daemon = _loaded(Daemon(work))
        floor_img = floor_initrd(work)
        kernel, accel_name = str(ROOT / "build" / "vmlinux"), accel.choose("auto")
        daemon.hyper("run", "--rm", "busybox", "true")  # warm caches: the root disk build
        floors, runs = [], []
        for _ in range(args.n):
            floors.append(boot_floor(kernel, floor_img, accel_name))
            runs.append(daemon.timed("run", "--rm", "busybox", "true"))
        ids = [
            daemon.hyper("run", "-d", "busybox", "sleep", "100000").stdout.decode().strip()
            for _ in range(5)
        ]
        time.sleep(3)  # let the guests go idle: the execs are timed on a quiet host
        execs = [daemon.timed("exec", ids[0], "true") for _ in range(max(args.n, 20))]
        api_execs = [exec_via_api(daemon.socket, ids[0]) for _ in range(max(args.n, 20))]
        rss = [qemu_rss_mib(f"hyper-{cid[:12]}") for cid in ids]
        daemon.stop()
        (work / "pooled").mkdir(mode=0o755)
        daemon = _loaded(Daemon(work / "pooled", factory="cache:1"))
        daemon.hyper("run", "--rm", "busybox", "true")
        warm = []
        for _ in range(args.n):
            daemon.pool_ready()
            warm.append(daemon.timed("run", "--rm", "busybox", "true"))
        daemon.stop()
        (work / "template").mkdir(mode=0o755)
        daemon = _loaded(Daemon(work / "template", factory="template"))
        daemon.template_ready()
        daemon.hyper("run", "--rm", "busybox", "true")
        clones = [daemon.timed("run", "--rm", "busybox", "true") for _ in range(args.n)]
    finally:
        if daemon:
            daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
    floor, run, ex, wr, cl = (statistics.median(x) for x in (floors, runs, execs, warm, clones))
    print(f"accel: {accel_name}, n={args.n} (medians)")
    print(f"floor  bare qemu boot + poweroff          : {floor:.3f} s")
    print(f"hyper run --rm busybox true               : {run:.3f} s  ({run / floor:.2f}x floor)")
    print(f"  the same, warm (a VM from the pool)     : {wr:.3f} s  ({wr / floor:.2f}x floor)")
    print(f"  the same, a clone of the template       : {cl:.3f} s  ({cl / floor:.2f}x floor)")
    print(f"hyper exec C true                         : {ex * 1000:.0f} ms")
    print(
        f"  the same exec through the API, in-process : "
        f"{statistics.median(api_execs) * 1000:.0f} ms (no CLI start-up)"
    )
    print(
        f"qemu RSS per idle container (5 running)   : {statistics.median(rss):.1f} MiB "
        f"(max {max(rss):.1f})"
    )
    record("run", "cold run --rm busybox true", run, "s", floor, "QEMU floor", 1.5)
    record("run", "warm run (pool)", wr, "s", floor, "QEMU floor", 0.5)
    record("run", "run from a template clone", cl, "s", floor, "QEMU floor")
    record("run", "hyper exec C true (CLI)", ex * 1000, "ms", target_value=60)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/run.py needs root (libvirt, hyperd)")
    main()
