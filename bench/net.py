"""HTTP requests per second to nginx in a hyper VM vs the same nginx on the host.

    python bench/net.py [-d 5] [-c 16]

Everything runs inside a network namespace this script creates (its own libvirtd, a
registry and hyperd, as tests/net does), so no traffic leaves it. wrk measures, for a
bounded time and connection count:
- host:  Debian's nginx run directly in the namespace on 127.0.0.1:8090 (the baseline)
- proxy: the VM's nginx through a published port, 127.0.0.1:8080 (userland proxy)
- vm:    the VM's nginx at its own address over the bridge (no proxy)
and prints requests/s with ratios to the baseline.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.summary import record  # noqa: E402
from tests.net.conftest import NGINX, REGISTRY, NetDaemon  # noqa: E402
from tests.net.nginx_image import CONF, PAGE  # noqa: E402
from tests.workdir import qemu_workdir  # noqa: E402


def wrk(d: NetDaemon, url: str, seconds: int, conns: int) -> float:
    """Requests per second that wrk measured (run inside the namespace)."""
    res = d.inside(
        "wrk", "-t", "2", "-c", str(conns), "-d", f"{seconds}s", url, timeout=seconds + 30
    )
    m = re.search(rb"Requests/sec:\s+([\d.]+)", res.stdout)
    if not m:
        sys.exit(f"wrk failed on {url}: {res.stdout.decode()}{res.stderr.decode()}")
    return float(m.group(1))


def wait_http(d: NetDaemon, url: str) -> None:
    code = f"import urllib.request as u; u.urlopen({url!r}, timeout=2).read()"
    for _ in range(100):
        if d.inside(sys.executable, "-c", code).returncode == 0:
            return
        time.sleep(0.2)
    sys.exit(f"{url} never answered")


def host_nginx(work: Path) -> Path:
    """An nginx config serving the same page on 127.0.0.1:8090 from the work dir."""
    html = work / "html"
    html.mkdir()
    (html / "index.html").write_text(PAGE)
    conf = CONF.replace("user www-data;\n", "").replace("listen 80;", "listen 127.0.0.1:8090;")
    conf = conf.replace("/usr/share/nginx/html", str(html)).replace(
        "/run/nginx.pid", str(work / "nginx.pid")
    )
    (work / "nginx.conf").write_text(conf)
    return work / "nginx.conf"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-d", type=int, default=5, help="seconds per measurement")
    ap.add_argument("-c", type=int, default=16, help="connections")
    args = ap.parse_args()
    subprocess.run([str(ROOT / "tools" / "start-libvirt.sh")], check=True)
    work = qemu_workdir("hyper-bench-net-")
    d = NetDaemon(work)
    d.start()
    procs = []
    try:
        cfg = work / "registry.yml"
        cfg.write_text(
            f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "
            f"{work / 'registry'}\nhttp:\n  addr: {REGISTRY}\n"
        )
        procs.append(
            subprocess.Popen(
                ["nsenter", "-t", str(d.ns_pid), "-n", "docker-registry", "serve", str(cfg)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_http(d, f"http://{REGISTRY}/v2/")
        d.inside(
            sys.executable,
            "-m",
            "tests.net.nginx_image",
            f"http://{REGISTRY}",
            NGINX.split("/", 1)[1],
        )
        procs.append(
            subprocess.Popen(
                ["nsenter", "-t", str(d.ns_pid), "-n", "nginx", "-c", str(host_nginx(work))],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        cid = d.hyper("run", "-d", "-p", "8080:80", NGINX).stdout.decode().strip()
        ip = json.loads(d.hyper("inspect", cid).stdout)[0]["NetworkSettings"]["IPAddress"]
        for url in ("http://127.0.0.1:8090/", "http://127.0.0.1:8080/", f"http://{ip}/"):
            wait_http(d, url)
        host = wrk(d, "http://127.0.0.1:8090/", args.d, args.c)
        proxy = wrk(d, "http://127.0.0.1:8080/", args.d, args.c)
        vm = wrk(d, f"http://{ip}/", args.d, args.c)
    finally:
        for c in d.hyper("ps", "-aq").stdout.decode().split():
            d.hyper("rm", "-f", c)
        for p in procs:
            p.terminate()
            p.wait(10)
        d.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrk -c {args.c} -d {args.d}s, requests/s")
    print(f"host  nginx in the namespace          : {host:10.0f}")
    print(f"proxy 127.0.0.1:8080 -> VM nginx      : {proxy:10.0f}  ({proxy / host:.3f}x host)")
    print(f"vm    bridge -> VM nginx (no proxy)   : {vm:10.0f}  ({vm / host:.3f}x host)")
    record("net", "requests/s through a published port", proxy, "req/s", host, "host nginx")
    record("net", "requests/s to the VM's address", vm, "req/s", host, "host nginx")


if __name__ == "__main__":
    main()
