"""Density: N containers started at once, their memory, and their removal.

    python bench/density.py [-n 50] [--ksm-wait 60] [--factory template]

Starts its own hyperd with the built-in busybox image, then, as a user would (the `hyper`
CLI in subprocesses, all issued at once):
- `hyper run -d busybox sleep 600` N times: how many succeed, seconds until all run;
- PSS of each idle container's QEMU (smaps_rollup), with KSM off, then on (after
  --ksm-wait seconds of merging; the host's KSM settings are restored afterwards);
- one `hyper rm -f` of all (it removes them at once, as the docker CLI does): seconds
  until all are gone, and VMs left behind;
- the CPU seconds each part used while the containers started (the QEMUs' vCPU threads,
  their QMP monitor threads and the rest of them, libvirtd, hyperd): what a faster start
  has to cut, when the cores are the limit.
With ``--factory template`` the daemon starts VMs as clones of a template VM (made before
the timing starts); with ``--factory template,cache:50`` a pool of 50 clones is filled
first (its fill time is printed, not timed). By default each VM boots (``factory = "none"``).
Beside the figures: the bare-QEMU boot of bench/boot.py measured in the same run (the time
for N at once over N times that floor, i.e. how well boots overlap) and the issue's targets
(all running in 15 s, removed in 5 s, 64 MiB PSS per idle container).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.boot import boot_floor, floor_initrd  # noqa: E402
from bench.run import Daemon  # noqa: E402
from bench.summary import record  # noqa: E402
from hyperd.vm import accel  # noqa: E402
from hyperd.vm.ksm import SYSFS as KSM  # noqa: E402
from tests.workdir import qemu_workdir  # noqa: E402

TARGETS = {"start_s": 15.0, "rm_s": 5.0, "pss_mib": 64.0}


def pss_mib(vm: str) -> float:
    """Proportional set size of a domain's QEMU process."""
    pid = Path(f"/run/libvirt/qemu/{vm}.pid").read_text().strip()
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ksm_settings() -> dict[str, str]:
    """The KSM knobs this bench changes, as they are now."""
    return {k: (KSM / k).read_text().strip() for k in ("run", "pages_to_scan", "sleep_millisecs")}


def ksm_set(values: dict[str, str]) -> None:
    for key, value in values.items():
        (KSM / key).write_text(value)


def start_all(daemon: Daemon, n: int) -> tuple[list[str], int, float]:
    """Issue n `run -d` at once; (ids, failures, seconds until every one is running)."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        results = list(
            pool.map(
                lambda _: daemon.hyper("run", "-d", "busybox", "sleep", "600", check=False),
                range(n),
            )
        )
    ids = [r.stdout.decode().strip() for r in results if r.returncode == 0]
    while len(daemon.hyper("ps", "-q").stdout.split()) < len(ids):
        time.sleep(0.1)
    for r in results:
        if r.returncode != 0:
            print(f"  run failed: {r.stderr.decode().strip()}", file=sys.stderr)
    return ids, n - len(ids), time.perf_counter() - t0


def _cpu_s(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(daemon_pid: int) -> Counter:
    """CPU seconds used so far by each part: the VMs' QEMUs by thread (vCPU, the QMP
    monitor's thread, the rest), libvirtd and hyperd."""
    used: Counter = Counter()
    for pidfile in Path("/run/libvirt/qemu").glob("hyper-*.pid"):
        with contextlib.suppress(OSError, ValueError):
            for task in Path(f"/proc/{int(pidfile.read_text())}/task").iterdir():
                name = (task / "comm").read_text().strip()
                part = ("vCPU" if name.startswith("CPU ") else
                        "monitor" if name == "IO mon_iothread" else "other")  # fmt: skip
                used[f"QEMU {part}"] += _cpu_s(task / "stat")
    for part, pids in (("libvirtd", _pids("libvirtd")), ("hyperd", [daemon_pid])):
        for pid in pids:
            with contextlib.suppress(OSError):
                used[part] += _cpu_s(Path(f"/proc/{pid}/stat"))
    return used


def _pids(name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def remove_all(daemon: Daemon, ids: list[str], vms: list[str]) -> tuple[float, float, int]:
    """One `hyper rm -f ID...` of every container, as `docker rm -f $(docker ps -q)`:
    (seconds until it answered, seconds until their VMs were gone too, VMs still there
    after a minute)."""
    t0 = time.perf_counter()
    daemon.hyper("rm", "-f", *ids, check=False)
    answered = time.perf_counter() - t0
    while (left := vms_left(vms)) and time.perf_counter() - t0 < 60:
        time.sleep(0.1)
    return answered, time.perf_counter() - t0, left


def vms_left(vms: list[str]) -> int:
    """How many of these domains libvirt still runs."""
    out = subprocess.run(["virsh", "list", "--name"], capture_output=True, text=True).stdout
    return len(set(out.split()) & set(vms))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--ksm-wait", type=float, default=60.0)
    ap.add_argument("--factory", default="none", help='hyperd\'s factory: "none" or "template"')
    args = ap.parse_args()
    subprocess.run([str(ROOT / "tools" / "start-libvirt.sh")], check=True)
    work = qemu_workdir("hyper-bench-density-")
    daemon, saved_ksm = None, ksm_settings() if KSM.exists() else None
    try:
        daemon = Daemon(work, args.factory)
        archive = work / "bb.tar"
        subprocess.run(
            [sys.executable, "-m", "hyperd.images.builtin", "busybox", str(archive)],
            check=True,
            cwd=ROOT,
        )
        daemon.hyper("load", "-i", str(archive))
        if "template" in args.factory:
            daemon.template_ready()
        daemon.hyper("run", "--rm", "busybox", "true")  # warm: the root disk is built
        if "cache:" in args.factory:
            fill_s = daemon.pool_full()
            print(f"pool filled in {fill_s:.1f} s (before the timing starts)")
        accel_name = accel.choose("auto")
        floor = boot_floor(str(ROOT / "build" / "vmlinux"), floor_initrd(work), accel_name)
        if saved_ksm:
            ksm_set({"run": "0"})
        before = cpu_seconds(daemon.proc.pid)
        ids, failed, start_s = start_all(daemon, args.n)
        cpu = cpu_seconds(daemon.proc.pid)
        cpu.subtract(before)
        time.sleep(10)  # let the guests go idle
        vms = [daemon.vm_of(cid) for cid in ids]
        pss_off = [pss_mib(vm) for vm in vms]
        pss_on, shared = [], 0
        if saved_ksm:
            ksm_set({"pages_to_scan": "5000", "sleep_millisecs": "20", "run": "1"})
            time.sleep(args.ksm_wait)
            pss_on = [pss_mib(vm) for vm in vms]
            shared = int((KSM / "pages_sharing").read_text())
            ksm_set(saved_ksm)  # its scan at this bench's rate (a core's worth) is not timed
        rm_s, gone_s, left = remove_all(daemon, ids, vms)
    finally:
        if saved_ksm:
            ksm_set(saved_ksm)
        if daemon:
            daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
    removal = (rm_s, gone_s, left)
    _report(args, accel_name, floor, failed, start_s, pss_off, pss_on, shared, removal)
    _report_cpu(cpu, args.n - failed, start_s)


def _report_cpu(cpu: Counter, started: int, start_s: float) -> None:
    """Where the CPU went while the containers started: what a faster start must cut."""
    parts = ", ".join(
        f"{part} {secs:.1f}" + (f" ({secs / started:.2f} each)" if part.startswith("QEMU") else "")
        for part, secs in cpu.most_common()
        if secs > 0
    )
    had = start_s * (os.cpu_count() or 1)
    print(f"CPU-s while starting                  : {parts}; {sum(cpu.values()):.0f} of {had:.0f}")


def _report(args, accel_name, floor, failed, start_s, pss_off, pss_on, shared, removal):
    n = args.n
    t = TARGETS
    print(f"accel: {accel_name}, {os.cpu_count()} cores, n={n}, factory {args.factory}")
    print(f"floor  bare qemu boot + poweroff      : {floor:.3f} s")
    print(
        f"{n} x run -d at once                   : {n - failed}/{n} ok, all running in "
        f"{start_s:.1f} s  ({start_s / (n * floor):.2f}x {n} floors in a row; "
        f"target {t['start_s']:.0f} s: {start_s / t['start_s']:.2f}x)"
    )
    if pss_off:
        med = statistics.median(pss_off)
        print(
            f"PSS per idle container, KSM off       : {med:.1f} MiB median "
            f"(max {max(pss_off):.1f}; target {t['pss_mib']:.0f}: {med / t['pss_mib']:.2f}x)"
        )
    if pss_on:
        med = statistics.median(pss_on)
        print(
            f"PSS per idle container, KSM on        : {med:.1f} MiB median after "
            f"{args.ksm_wait:.0f} s ({shared * 4 / 1024:.0f} MiB shared; "
            f"{med / t['pss_mib']:.2f}x target)"
        )
    rm_s, gone_s, left = removal
    _record(
        f"{n}" if args.factory == "none" else f"{n} ({args.factory})",
        failed,
        start_s,
        pss_off,
        pss_on,
        gone_s,
    )
    print(
        f"rm -f of all (one command)            : {rm_s:.1f} s, VMs gone in {gone_s:.1f} s "
        f"(target {t['rm_s']:.0f} s: {gone_s / t['rm_s']:.2f}x); VMs left: {left}"
    )


def _record(n, failed, start_s, pss_off, pss_on, gone_s) -> None:
    t = TARGETS
    record("density", f"{n} run -d at once: failed", failed, "", target_value=0)
    record("density", f"{n} run -d at once: all running", start_s, "s", target_value=t["start_s"])
    for label, pss in (("KSM off", pss_off), ("KSM on", pss_on)):
        if pss:
            med = statistics.median(pss)
            record("density", f"PSS per idle container ({n}), {label}", med, "MiB",
                   target_value=t["pss_mib"])  # fmt: skip
    record("density", f"rm -f of {n}: VMs gone", gone_s, "s", target_value=t["rm_s"])


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/density.py needs root (libvirt, hyperd, KSM)")
    main()
