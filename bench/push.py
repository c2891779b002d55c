"""Benchmark: hyper push against `skopeo copy` of the same image to the same kind of registry.

The ~100 MB, 5-layer image of bench/pull.py is pushed to a source docker-registry, pulled
into a hyper image store, and copied by skopeo into a local directory (its source). Each of
N rounds starts a fresh registry on a free loopback port (so neither tool finds a blob
there already) and times, one after the other on it:
  * hyper: ImageService.push of the pulled image (HEAD, POST, PUT per blob, then manifest)
  * skopeo copy --dest-tls-verify=false dir:SRC docker://127.0.0.1:PORT/bench/skopeo:latest
and checks that both manifests have the digest hyper has.

    python bench/push.py [-n 5] [--mb 100]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "images"))

import imagebuilder as ib  # noqa: E402

from bench.pull import make_layers, start_registry, timed  # noqa: E402
from bench.summary import record  # noqa: E402
from hyperd.images import ImageService  # noqa: E402


def skopeo_digest(ref: str) -> str:
    """The manifest digest a registry serves for ``ref``."""
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
        capture_output=True,
        check=True,
    ).stdout
    return json.loads(out)["Digest"]


def one_round(work: Path, i: int, svc: ImageService, image_id: str, src_dir: Path) -> tuple:
    """Both pushes to a fresh registry; (hyper seconds, skopeo seconds)."""
    rdir = work / f"reg{i}"
    rdir.mkdir()
    proc, host = start_registry(rdir)
    try:
        ref = f"{host}/bench/hyper:latest"
        svc.tag(image_id, ref)
        th = timed(lambda: svc.push(ref))
        cmd = [
            "skopeo", "copy", "-q", "--dest-tls-verify=false",
            f"dir:{src_dir}", f"docker://{host}/bench/skopeo:latest",
        ]  # fmt: skip
        ts = timed(lambda: subprocess.run(cmd, check=True))
        want = svc.resolve(image_id).manifest_digest
        got = {skopeo_digest(ref), skopeo_digest(f"{host}/bench/skopeo:latest")}
        if got != {want}:
            raise SystemExit(f"round {i + 1}: digests differ: hyper {want}, registry {got}")
        svc.index.untag(str(svc.lookup(ref)[1]))
        return th, ts
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(rdir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--mb", type=int, default=100, help="approximate image size in MB")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="push-bench-", dir="/tmp"))
    proc, host = start_registry(work)
    try:
        print(f"building a ~{args.mb} MB 5-layer image …", flush=True)
        img = ib.build_image(make_layers(args.mb))
        ib.Pusher(f"http://{host}").push_image("bench/img", "latest", img)
        compressed = sum(len(b) for b in img.blobs.values())
        print(f"source {host}/bench/img: {compressed / 1e6:.1f} MB compressed", flush=True)
        svc = ImageService(work / "store")
        image_id = svc.pull(f"{host}/bench/img:latest").id
        src_dir = work / "skopeo-src"
        subprocess.run(
            ["skopeo", "copy", "-q", "--src-tls-verify=false",
             f"docker://{host}/bench/img:latest", f"dir:{src_dir}"],
            check=True,
        )  # fmt: skip
        hyper, skopeo = [], []
        for i in range(args.n):
            th, ts = one_round(work, i, svc, image_id, src_dir)
            hyper.append(th)
            skopeo.append(ts)
            print(f"round {i + 1}: hyper push {th:.2f}s, skopeo copy {ts:.2f}s", flush=True)
        mh, ms = statistics.median(hyper), statistics.median(skopeo)
        print(f"median hyper push:   {mh:.3f}s  ({compressed / 1e6 / mh:.0f} MB/s)")
        print(f"median skopeo copy:  {ms:.3f}s  ({compressed / 1e6 / ms:.0f} MB/s)")
        print(f"ratio hyper/skopeo:  {mh / ms:.2f}")
        record("push", "push", mh, "s", ms, "skopeo copy")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
