"""Benchmark: hyper pull (+ root disk build) against `skopeo copy … dir:` on a local registry.

Builds a ~100 MB, 5-layer image (incompressible and compressible files), pushes it to a
docker-registry started on a free loopback port, then times N rounds of:
  * hyper: ImageService.pull into a fresh store (which builds the root disk), then
    rootfs_path(); the disk's fsync, which runs once it is usable
    (hyperd/images/writebehind.py), is waited for untimed before skopeo starts
  * skopeo copy --src-tls-verify=false docker://127.0.0.1:PORT/bench/img dir:/tmp/…
and finally the root disk build alone: erofs from the tar stream, and unpacked + mkfs
for erofs and ext4.

    python bench/pull.py [-n 5] [--mb 100]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "images"))

import imagebuilder as ib  # noqa: E402

from bench.summary import record  # noqa: E402
from hyperd.images import ImageService  # noqa: E402
from hyperd.images.rootfs import build_image  # noqa: E402

WORDS = b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi "


def start_registry(work: Path) -> tuple[subprocess.Popen, str]:
    """docker-registry on a free 127.0.0.1 port, filesystem storage under ``work``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = work / "registry.yml"
    cfg.write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {work}/storage\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    log = open(work / "registry.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=log, stderr=log)
    host = f"127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(f"http://{host}/v2/", timeout=1).status_code == 200:
                return proc, host
        except requests.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("docker-registry did not start")


def make_layers(total_mb: int, nlayers: int = 5) -> list[list[ib.Entry]]:
    """Layers mixing big random files, compressible text and many small files."""
    rng = random.Random(42)
    per_layer = total_mb * (1 << 20) // nlayers
    layers = []
    for i in range(nlayers):
        entries = [ib.d(f"l{i}"), ib.d(f"l{i}/small")]
        random_bytes = per_layer // 2
        for j in range(4):
            entries.append(ib.f(f"l{i}/blob{j}.bin", os.urandom(random_bytes // 4)))
        text = (WORDS * (per_layer // 4 // len(WORDS) + 1))[: per_layer // 4]
        entries.append(ib.f(f"l{i}/text.txt", text))
        for j in range(600):  # ~ per_layer/4 in small files
            size = rng.randint(100, max(200, per_layer // 4 // 300))
            entries.append(
                ib.f(f"l{i}/small/f{j:04d}", rng.randbytes(size // 2) + text[: size // 2])
            )
        layers.append(entries)
    return layers


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--mb", type=int, default=100, help="approximate image size in MB")
    ap.add_argument("--build-dir", help="flatten layers here (e.g. /dev/shm); default: store")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="img-bench-", dir="/tmp"))
    proc, host = start_registry(work)
    try:
        print(f"building a ~{args.mb} MB 5-layer image …", flush=True)
        img = ib.build_image(make_layers(args.mb))
        ib.Pusher(f"http://{host}").push_image("bench/img", "latest", img)
        compressed = sum(len(b) for b in img.blobs.values())
        print(f"pushed {host}/bench/img: {compressed / 1e6:.1f} MB compressed")
        name = f"{host}/bench/img:latest"
        hyper_pull, hyper_total, skopeo = [], [], []
        for i in range(args.n):
            svc = ImageService(work / f"store{i}", {"build_dir": args.build_dir})
            os.sync()  # each side starts with nothing left to write back
            tp = timed(lambda svc=svc: svc.pull(name))
            tb = timed(lambda svc=svc: svc.rootfs_path(name))
            svc.writebehind.flush()  # the disk's sync, after it is usable: not timed, but done
            os.sync()  # before skopeo runs
            hyper_pull.append(tp)
            hyper_total.append(tp + tb)
            dest = work / f"skopeo{i}"
            cmd = [
                "skopeo",
                "copy",
                "-q",
                "--src-tls-verify=false",
                f"docker://{name}",
                f"dir:{dest}",
            ]
            skopeo.append(timed(lambda cmd=cmd: subprocess.run(cmd, check=True)))
            shutil.rmtree(work / f"store{i}")
            shutil.rmtree(dest)
            print(
                f"round {i + 1}: hyper pull {tp:.2f}s + rootfs {tb:.2f}s, skopeo {skopeo[-1]:.2f}s"
            )
        mp, mt, ms = (statistics.median(x) for x in (hyper_pull, hyper_total, skopeo))
        print(f"median hyper pull:            {mp:.3f}s  (ratio to skopeo {mp / ms:.2f})")
        print(f"median hyper pull + rootfs:   {mt:.3f}s  (ratio to skopeo {mt / ms:.2f})")
        print(f"median skopeo copy dir:       {ms:.3f}s")
        record("pull", "pull + root disk", mt, "s", ms, "skopeo copy", 1.5)
        bench_fstypes(work, name, args.n, args.build_dir)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def bench_fstypes(work: Path, name: str, rounds: int, build_dir: str | None) -> None:
    """Root disk build alone, on the same layers: erofs from the tar stream (what hyperd
    does where mkfs.erofs has --tar), then unpacked + mkfs for erofs and ext4."""
    svc = ImageService(work / "fs-store")
    rec = svc.pull(name)
    layers = [svc.store.path(d.digest) for d in rec.layers]
    for label, fstype, unpack in (
        ("erofs from tar stream", "erofs", False),
        ("erofs unpacked + mkfs", "erofs", True),
        ("ext4 unpacked + mkfs", "ext4", True),
    ):
        runs = [
            build_image(
                layers, work / f"out.{fstype}", fstype, Path(build_dir or work), unpack=unpack
            )
            for _ in range(max(3, rounds))
        ]
        total = statistics.median(r["build_s"] for r in runs)
        phases = ""
        if "flatten_s" in runs[0]:
            fl = statistics.median(r["flatten_s"] for r in runs)
            mk = statistics.median(r["mkfs_s"] for r in runs)
            phases = f" (flatten {fl:.2f}s, mkfs {mk:.2f}s)"
        used = os.stat(work / f"out.{fstype}").st_blocks * 512
        print(
            f"rootfs {label:22s}: {total:.2f}s{phases}, "
            f"image {runs[-1]['bytes'] / 1e6:.0f} MB apparent / {used / 1e6:.0f} MB allocated"
        )


if __name__ == "__main__":
    main()
