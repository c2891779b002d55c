"""Push the built-in nginx image (plus a UDP echo server) to the test registry.

    python -m tests.net.nginx_image REGISTRY_URL REPO:TAG
Run inside the test's network namespace, where the registry listens.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from hyperd.images import builtin
from tests.images.imagebuilder import Entry, Pusher, build_image

PAGE = builtin.NGINX_PAGE
CONF = builtin.NGINX_CONF


def _entries(items: list[builtin.Item]) -> list[Entry]:
    return [Entry(i.path, i.kind, i.data, i.mode, linkname=i.target) for i in items]


def _udp_echo() -> bytes:
    """A static UDP echo server (tests/net/udp_echo.c) for the UDP port tests."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "udp-echo"
        src = Path(__file__).with_name("udp_echo.c")
        subprocess.run(
            ["gcc", "-static", "-O2", "-Wall", "-Werror", "-o", str(out), str(src)], check=True
        )
        return out.read_bytes()


def layers() -> list[list[Entry]]:
    """The built-in nginx image's layers, and one with the UDP echo server."""
    echo = [builtin.Item("usr/bin/udp-echo", data=_udp_echo(), mode=0o755)]
    return [_entries(builtin.busybox_items()), _entries(builtin.nginx_items()), _entries(echo)]


def main() -> None:
    registry, name = sys.argv[1], sys.argv[2]
    repo, _, tag = name.rpartition(":")
    config = builtin.IMAGES["nginx"][1]
    Pusher(registry).push_image(repo, tag, build_image(layers(), config=config))


if __name__ == "__main__":
    main()
