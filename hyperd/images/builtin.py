"""The built-in image: busybox from the host's busybox-static, as a `docker save` archive.

It lets a fresh machine run `hyper run --rm busybox echo hello` without any registry:
    python -m hyperd.images.builtin busybox.tar && hyper load -i busybox.tar
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

BUSYBOX = "/bin/busybox"
NAME = "busybox:latest"
MTIME = 1_700_000_000
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"


def _applets(busybox: str) -> list[str]:
    out = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout
    return sorted(a for a in out.split() if a and a != "busybox")


def _add(tar: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", link=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.linkname = kind, mode, MTIME, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def layer_tar(busybox: str = BUSYBOX) -> bytes:
    """The single layer: /bin/busybox, a symlink per applet, /etc/passwd and /etc/group."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777)):
            _add(tar, d, tarfile.DIRTYPE, mode)
        for d in ("dev", "proc", "sys", "var", "home", "usr", "usr/bin", "usr/sbin", "sbin"):
            _add(tar, d, tarfile.DIRTYPE, 0o755)
        _add(tar, "bin/busybox", tarfile.REGTYPE, 0o755, Path(busybox).read_bytes())
        for applet in _applets(busybox):
            _add(tar, f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
        _add(tar, "etc/passwd", tarfile.REGTYPE, 0o644, PASSWD.encode())
        _add(tar, "etc/group", tarfile.REGTYPE, 0o644, GROUP.encode())
    return buf.getvalue()


def write_archive(out: str | Path, busybox: str = BUSYBOX, name: str = NAME) -> None:
    """Write a `docker save` archive of the busybox image to ``out``."""
    layer = layer_tar(busybox)
    layer_hex = hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2023-11-14T22:13:20Z",
            "config": {"Cmd": ["sh"], "Env": [PATH_ENV]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_hex}"]},
            "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "hyper builtin"}],
        },
        sort_keys=True,
    ).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    manifest = [
        {"Config": f"{config_hex}.json", "RepoTags": [name], "Layers": [f"{layer_hex}/layer.tar"]}
    ]
    with tarfile.open(out, "w") as tar:
        for path, data in (
            (f"{layer_hex}/layer.tar", layer),
            (f"{config_hex}.json", config),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            _add(tar, path, tarfile.REGTYPE, 0o644, data)


if __name__ == "__main__":
    write_archive(sys.argv[1] if len(sys.argv) > 1 else "busybox.tar")
