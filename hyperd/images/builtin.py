"""Built-in images made from the host's Debian packages, as `docker save` archives.

They let a machine with no registry run real images:
    python -m hyperd.images.builtin busybox busybox.tar && hyper load -i busybox.tar
    python -m hyperd.images.builtin nginx nginx.tar && hyper load -i nginx.tar
- busybox: busybox-static, a symlink per applet, root/daemon/nobody users
- nginx:   Debian's nginx (nginx-light) with the libraries it links, a config running in
           the foreground, a default page, and busybox for `hyper exec`
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

BUSYBOX = "/bin/busybox"
NGINX = "/usr/sbin/nginx"
MTIME = 1_700_000_000
CREATED = "2023-11-14T22:13:20Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "www-data:x:33:33:www-data:/var/www:/bin/false\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nnogroup:x:65534:\n"
NGINX_PAGE = "<!doctype html><title>hyper</title><h1>nginx in a hyper VM</h1>\n"
NGINX_CONF = """user www-data;
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


@dataclass
class Item:
    """One entry of a layer: a directory, a file (data) or a symlink (target)."""

    path: str
    kind: str = "file"  # file | dir | symlink
    data: bytes = b""
    mode: int = 0o644
    target: str = ""


def _dirs(*paths: str, mode: int = 0o755) -> list[Item]:
    return [Item(p, "dir", mode=mode) for p in paths]


def _file(host_path: str, mode: int = 0o644, path: str | None = None) -> Item:
    return Item((path or host_path).lstrip("/"), data=Path(host_path).read_bytes(), mode=mode)


def busybox_items(busybox: str = BUSYBOX) -> list[Item]:
    """/bin/busybox, a symlink per applet, /etc/passwd and /etc/group."""
    out = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout
    items = _dirs(
        "bin",
        "etc",
        "dev",
        "proc",
        "sys",
        "var",
        "home",
        "usr",
        "usr/bin",
        "usr/sbin",
        "sbin",
        "run",
    ) + [Item("root", "dir", mode=0o700), Item("tmp", "dir", mode=0o1777)]
    items.append(_file(busybox, 0o755, "bin/busybox"))
    items += [
        Item(f"bin/{a}", "symlink", target="busybox")
        for a in sorted(set(out.split()))
        if a != "busybox"
    ]
    items += [Item("etc/passwd", data=PASSWD.encode()), Item("etc/group", data=GROUP.encode())]
    return items


def _libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    return sorted(set(re.findall(r"(/\S+\.so[.\d]*)", out)))


def nginx_items(nginx: str = NGINX) -> list[Item]:
    """nginx, the libraries it links, its config and a page (a layer over busybox)."""
    libs = _libraries(nginx)
    items = _dirs(
        "lib64",
        *sorted({str(Path(p).parent).lstrip("/") for p in libs} | {"lib", "lib/x86_64-linux-gnu"}),
    )
    for lib in libs:
        if os.path.islink(lib) and lib.startswith("/lib64/"):
            # the loader: keep the link, and its bytes at the link's literal target (on a
            # merged-/usr host, realpath would name /usr/lib, which the image lacks)
            target = os.readlink(lib)
            items.append(Item(lib.lstrip("/"), "symlink", target=target))
            items.append(Item(target.lstrip("/"), data=Path(lib).read_bytes(), mode=0o755))
        else:
            items.append(_file(lib, 0o755))
    items += _dirs(
        "etc/nginx",
        "usr/share",
        "usr/share/nginx",
        "usr/share/nginx/html",
        "var/lib",
        "var/lib/nginx",
        "var/log",
        "var/log/nginx",
    )
    items.append(_file(nginx, 0o755, "usr/sbin/nginx"))
    items.append(Item("etc/nginx/nginx.conf", data=NGINX_CONF.encode()))
    items.append(_file("/etc/nginx/mime.types"))
    items.append(Item("usr/share/nginx/html/index.html", data=NGINX_PAGE.encode()))
    return items


IMAGES = {
    "busybox": (lambda: [busybox_items()], {"Cmd": ["sh"], "Env": [PATH_ENV]}),
    "nginx": (
        lambda: [busybox_items(), nginx_items()],
        {"Cmd": ["nginx"], "Env": [PATH_ENV], "ExposedPorts": {"80/tcp": {}}},
    ),
}


def layer_tar(items: list[Item]) -> bytes:
    """An uncompressed layer tar of ``items`` (fixed mtimes: same input, same digest)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for it in items:
            kind = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}
            _add(
                tar,
                it.path,
                kind[it.kind],
                0o777 if it.kind == "symlink" else it.mode,
                it.data,
                it.target,
            )
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", link=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.linkname = kind, mode, MTIME, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def write_archive(out: str | Path, name: str, layers: list[bytes], config: dict) -> None:
    """Write a `docker save` archive of one image made of ``layers`` (bottom first)."""
    hexes = [hashlib.sha256(layer).hexdigest() for layer in layers]
    cfg = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": CREATED,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{h}" for h in hexes]},
            "history": [{"created": CREATED, "created_by": "hyper builtin"} for _ in layers],
        },
        sort_keys=True,
    ).encode()
    cfg_hex = hashlib.sha256(cfg).hexdigest()
    manifest = [
        {
            "Config": f"{cfg_hex}.json",
            "RepoTags": [name],
            "Layers": [f"{h}/layer.tar" for h in hexes],
        }
    ]
    with tarfile.open(out, "w") as tar:
        for h, layer in zip(hexes, layers, strict=True):
            _add(tar, f"{h}/layer.tar", tarfile.REGTYPE, 0o644, layer)
        _add(tar, f"{cfg_hex}.json", tarfile.REGTYPE, 0o644, cfg)
        _add(tar, "manifest.json", tarfile.REGTYPE, 0o644, json.dumps(manifest).encode())


def build(image: str, out: str | Path) -> None:
    """Write the archive of a built-in image (tagged IMAGE:latest)."""
    make_layers, config = IMAGES[image]
    write_archive(out, f"{image}:latest", [layer_tar(items) for items in make_layers()], config)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in IMAGES:
        sys.exit(f"usage: python -m hyperd.images.builtin {{{'|'.join(IMAGES)}}} OUT.tar")
    build(sys.argv[1], sys.argv[2])
