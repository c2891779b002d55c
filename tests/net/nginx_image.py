"""Build an nginx image from Debian's nginx package (plus busybox) and push it.

    python -m tests.net.nginx_image REGISTRY_URL REPO:TAG
Run inside the test's network namespace, where the registry listens.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.images.imagebuilder import Pusher, build_image, d, f, sym

PAGE = "<!doctype html><title>hyper</title><h1>nginx in a hyper VM</h1>\n"
CONF = """user www-data;
worker_processes 1;
daemon off;
error_log /dev/stderr;
pid /run/nginx.pid;
events { worker_connections 128; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    server { listen 80; root /usr/share/nginx/html; index index.html; }
}
"""
APPLETS = ("sh", "wget", "nc", "cat", "ls", "sleep", "echo", "cut", "grep", "hostname", "ip")


def _libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    return sorted(set(re.findall(r"(/\S+\.so[.\d]*)", out)))


def _file(path: str, mode: int = 0o644):
    return f(path.lstrip("/"), Path(path).read_bytes(), mode)


def layers() -> list[list]:
    """A base layer (libraries, busybox, users) and an nginx layer."""
    libs = _libraries("/usr/sbin/nginx")
    dirs = {str(Path(p).parent).lstrip("/") for p in libs}
    base = [d("bin"), d("etc"), d("tmp", 0o1777), d("run"), d("lib64")]
    base += [d(x) for x in sorted(dirs | {"lib", "lib/x86_64-linux-gnu", "usr", "usr/sbin"})]
    for lib in libs:
        if os.path.islink(lib) and lib.startswith("/lib64/"):
            # the loader: keep the link, and its bytes at the link's literal target (on a
            # merged-/usr host, realpath would name /usr/lib, which the image lacks)
            target = os.readlink(lib)
            base.append(sym(lib.lstrip("/"), target))
            base.append(f(target.lstrip("/"), Path(lib).read_bytes(), 0o755))
            continue
        base.append(_file(lib, 0o755))
    base.append(_file("/bin/busybox", 0o755))
    base += [sym(f"bin/{a}", "busybox") for a in APPLETS]
    base.append(
        f("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\n")
    )
    base.append(f("etc/group", "root:x:0:\nwww-data:x:33:\n"))
    web = [_file("/usr/sbin/nginx", 0o755), d("etc/nginx"), f("etc/nginx/nginx.conf", CONF)]
    web.append(_file("/etc/nginx/mime.types"))
    for x in (
        "usr/share",
        "usr/share/nginx",
        "usr/share/nginx/html",
        "var",
        "var/lib",
        "var/lib/nginx",
        "var/log",
        "var/log/nginx",
    ):
        web.append(d(x))
    web.append(f("usr/share/nginx/html/index.html", PAGE))
    web.append(f("usr/bin/udp-echo", _udp_echo(), 0o755))
    return [base, web]


def _udp_echo() -> bytes:
    """A static UDP echo server (tests/net/udp_echo.c) for the UDP port tests."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "udp-echo"
        src = Path(__file__).with_name("udp_echo.c")
        subprocess.run(
            ["gcc", "-static", "-O2", "-Wall", "-Werror", "-o", str(out), str(src)], check=True
        )
        return out.read_bytes()


def main() -> None:
    registry, name = sys.argv[1], sys.argv[2]
    repo, _, tag = name.rpartition(":")
    img = build_image(
        layers(),
        config={
            "Cmd": ["nginx"],
            "ExposedPorts": {"80/tcp": {}},
            "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        },
    )
    Pusher(registry).push_image(repo, tag, img)


if __name__ == "__main__":
    main()
