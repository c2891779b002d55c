"""Filesystem speed in a container: a bind mount (9p), a named volume (ext4 disk), the
container's own root (overlayfs on its writable disk), each beside the same work done
directly on the host in the same run.

    python bench/volumes.py [--size-mib 256] [--files 5000]

Workloads: a sequential write of --size-mib fsync'd (dd conv=fsync), a sequential read of it
from a cold guest (a new VM; host caches dropped), and unpacking a tar of --files small files
then sync. Times are taken around `exec` from the host, less the cost of an empty exec
measured in the same container. Prints MB/s (files/s) and the ratio to the host.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.logs import start_daemon  # noqa: E402
from bench.summary import record  # noqa: E402
from tests.workdir import qemu_workdir  # noqa: E402


def _drop_host_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def _small_files_tar(count: int) -> bytes:
    buf = io.BytesIO()
    payload = os.urandom(1024)
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(count):
            info = tarfile.TarInfo(f"files/d{i // 100}/f{i}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _timed(container, cmd: str, empty: float) -> float:
    start = time.perf_counter()
    res = container.exec_run(["sh", "-c", cmd])
    took = time.perf_counter() - start - empty
    if res.exit_code != 0:
        sys.exit(f"{cmd!r} failed: {res.output.decode(errors='replace')}")
    return max(took, 1e-6)


def _host(workdir: Path, size_mib: int, tar: bytes) -> dict[str, float]:
    d = workdir / "host"
    d.mkdir()
    f = d / "seq"
    start = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={f}", "bs=1M", f"count={size_mib}", "conv=fsync"],
        check=True,
        capture_output=True,
    )
    write = time.perf_counter() - start
    _drop_host_caches()
    start = time.perf_counter()
    subprocess.run(["dd", f"if={f}", "of=/dev/null", "bs=1M"], check=True, capture_output=True)
    read = time.perf_counter() - start
    (workdir / "files.tar").write_bytes(tar)
    start = time.perf_counter()
    subprocess.run(["tar", "-xf", str(workdir / "files.tar"), "-C", str(d)], check=True)
    subprocess.run(["sync"], check=True)
    untar = time.perf_counter() - start
    return {"write": write, "read": read, "untar": untar}


def _in_vm(client, mounts: dict, target: str, size_mib: int, tar: bytes) -> dict[str, float]:
    c = client.containers.run("busybox", ["sleep", "3600"], volumes=mounts, detach=True)
    try:
        empty = min(_exec_cost(c) for _ in range(3))
        write = _timed(
            c, f"dd if=/dev/zero of={target}/seq bs=1M count={size_mib} conv=fsync", empty
        )
        c.put_archive("/tmp", _tar_of("files.tar", tar))
        untar = _timed(c, f"tar -xf /tmp/files.tar -C {target} && sync", empty)
        c.stop(timeout=1)  # the next run is a new VM: a cold guest page cache
        _drop_host_caches()
        c.start()
        empty = min(_exec_cost(c) for _ in range(3))
        read = _timed(c, f"dd if={target}/seq of=/dev/null bs=1M", empty)
    finally:
        c.remove(force=True)
    return {"write": write, "read": read, "untar": untar}


def _exec_cost(c) -> float:
    start = time.perf_counter()
    c.exec_run(["true"])
    return time.perf_counter() - start


def _tar_of(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--files", type=int, default=5000)
    args = ap.parse_args()
    work = qemu_workdir("hyper-bench-vol-")
    tar = _small_files_tar(args.files)
    proc, client = start_daemon(ROOT, work)
    try:
        results = {"host": _host(work, args.size_mib, tar)}
        bind = work / "bind"
        bind.mkdir()
        results["bind (9p)"] = _in_vm(
            client, {str(bind): {"bind": "/b", "mode": "rw"}}, "/b", args.size_mib, tar
        )
        client.volumes.create("benchvol")
        results["volume (ext4)"] = _in_vm(
            client, {"benchvol": {"bind": "/v", "mode": "rw"}}, "/v", args.size_mib, tar
        )
        client.volumes.get("benchvol").remove()
        results["root (overlay)"] = _in_vm(client, {}, "/var", args.size_mib, tar)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    _report(results, args)


def _report(results: dict, args) -> None:
    mb = args.size_mib * 1.048576
    host = results["host"]
    print(f"{'target':16} {'write MB/s':>11} {'ratio':>6} {'read MB/s':>10} {'ratio':>6} "
          f"{'files/s':>9} {'ratio':>6}")  # fmt: skip
    for name, r in results.items():
        print(
            f"{name:16} {mb / r['write']:>11.1f} {host['write'] / r['write']:>6.2f} "
            f"{mb / r['read']:>10.1f} {host['read'] / r['read']:>6.2f} "
            f"{args.files / r['untar']:>9.0f} {host['untar'] / r['untar']:>6.2f}"
        )
    print("ratio: the host's time / the target's (1.00 = as fast as the host)")
    for name in ("volume (ext4)", "bind (9p)"):
        r = results[name]
        record("volumes", f"{name} write", mb / r["write"], "MB/s", mb / host["write"], "host")


if __name__ == "__main__":
    main()
