"""Cold boot of hyper's VM vs the bare-QEMU floor, measured in the same run.

    python bench/boot.py [-n 5] [--kernel build/vmlinux] [--initrd build/initrd.img]

- floor: the same kernel started by bare qemu-system-x86_64 with a static /init that
  powers off at once (wall time from spawn to QEMU's exit)
- hyper READY: libvirt domain start until the agent's READY
- hyper true: until `true` has run in a container and its exit status came back

Prints each median and the ratios to the floor. Uses the accelerator hyperd would pick.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.summary import record  # noqa: E402
from hyperd.agent import protocol as p  # noqa: E402
from hyperd.images import builtin  # noqa: E402
from hyperd.vm import accel, designer  # noqa: E402
from hyperd.vm.machine import Machine  # noqa: E402
from hyperd.vm.virt import Hypervisor  # noqa: E402
from tests.workdir import qemu_workdir  # noqa: E402

POWEROFF_C = r"""
#include <sys/reboot.h>
#include <unistd.h>
int main(void) { sync(); reboot(RB_POWER_OFF); return 0; }
"""


def floor_initrd(work: Path) -> Path:
    """An initrd whose /init powers off immediately."""
    src, binary, out = work / "poweroff.c", work / "poweroff", work / "floor.img"
    src.write_text(POWEROFF_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(binary), str(src)], check=True)
    subprocess.run([str(ROOT / "hyperstart" / "mkinitrd.sh"), str(out), str(binary)], check=True)
    return out


def busybox_root(work: Path) -> Path:
    """An erofs root disk of the built-in busybox image."""
    tree = work / "tree"
    tree.mkdir()
    layer = work / "layer.tar"
    layer.write_bytes(builtin.layer_tar(builtin.busybox_items()))
    with tarfile.open(layer) as tar:
        tar.extractall(tree, filter="tar")
    image = work / "busybox.erofs"
    subprocess.run(["mkfs.erofs", str(image), str(tree)], check=True, stdout=subprocess.DEVNULL)
    return image


def boot_floor(kernel: str, initrd: Path, accel_name: str) -> float:
    """Seconds from spawning bare QEMU to its exit after the guest powers off."""
    cmd = [
        "qemu-system-x86_64",
        "-machine",
        f"pc,accel={accel_name}",
        "-cpu",
        "max" if accel_name == "tcg" else "host",
        "-m",
        "256",
        "-smp",
        "1",
        "-nodefaults",
        "-nographic",
        "-no-reboot",
        "-serial",
        "null",
        "-kernel",
        kernel,
        "-initrd",
        str(initrd),
        "-append",
        f"console=ttyS0 {designer.KERNEL_ARGS}",
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


async def boot_hyper(kernel: str, initrd: str, image: Path, work: Path, domain_type: str):
    """(seconds to READY, seconds to a finished `true`) for one cold VM."""
    name = f"hyper-bench-{uuid.uuid4().hex[:8]}"
    rw = work / f"{name}.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", str(rw), "64M"], check=True)
    run = Path("/run/hyper-bench") / name
    spec = designer.VMSpec(
        name=name,
        uuid=str(uuid.uuid4()),
        kernel=kernel,
        initrd=initrd,
        control_socket=str(run / "control.sock"),
        stream_socket=str(run / "stream.sock"),
        console_log=str(work / f"{name}.log"),
        disks=[designer.DiskSpec(str(image), "image", True), designer.DiskSpec(str(rw), "rw")],
    )
    machine = Machine(Hypervisor(), spec, domain_type, designer.DEFAULT_TB_CACHE_MIB)
    t0 = time.perf_counter()
    try:
        agent = await machine.boot(timeout=120)
        ready = time.perf_counter() - t0
        io = agent.open_process("c", "init", agent.new_seq(), agent.new_seq())
        proc = p.Process("init", ["true"], io.stdio, io.stderr)
        await agent.call(p.Code.STARTPOD, p.startpod(name))
        mounts = p.root_mounts("image", "erofs", "rw")
        await agent.call(p.Code.NEWCONTAINER, p.newcontainer("c", mounts, proc))
        await agent.close_stdin(io.stdio)
        status = await io.exited
        done = time.perf_counter() - t0
        assert status == 0, status
        return ready, done
    finally:
        await machine.destroy()
        rw.unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5, help="boots of each kind")
    ap.add_argument("--kernel", default=str(ROOT / "build" / "vmlinux"))
    ap.add_argument("--initrd", default=str(ROOT / "build" / "initrd.img"))
    args = ap.parse_args()
    accel_name = accel.choose("auto")
    subprocess.run([str(ROOT / "tools" / "start-libvirt.sh")], check=True)
    work = qemu_workdir("hyper-bench-")
    try:
        floor_img, image = floor_initrd(work), busybox_root(work)
        floors, readies, trues = [], [], []
        for _ in range(args.n):  # interleaved, so drift hits both sides alike
            floors.append(boot_floor(args.kernel, floor_img, accel_name))
            ready, done = asyncio.run(
                boot_hyper(args.kernel, args.initrd, image, work, accel.domain_type(accel_name))
            )
            readies.append(ready)
            trues.append(done)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    floor = statistics.median(floors)
    print(f"accel: {accel_name}, {args.n} boots each (medians)")
    print(f"floor  bare qemu boot + poweroff : {floor:.3f} s")
    for label, values in (("hyper  boot to READY", readies), ("hyper  boot to `true` done", trues)):
        med = statistics.median(values)
        print(f"{label:<33}: {med:.3f} s  ({med / floor:.2f}x floor)")
    record("boot", "boot to READY", statistics.median(readies), "s", floor, "QEMU floor", 1.5)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/boot.py needs root (libvirt, mkfs)")
    main()
