"""A flood of API connections past the daemon's descriptor limit: the excess gets a clear
503, the log stays quiet, the daemon answers again once clients leave, and SIGTERM stops it
while the flood is on. A real daemon of its own, started under `prlimit`."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import socket
import time

import pytest

from hyperd.main import RESERVED_FDS
from tests.daemon_fixture import Daemon
from tests.workdir import qemu_workdir

NOFILE = 700
CAP = NOFILE - RESERVED_FDS  # what the daemon lowers max_connections to under that limit
FLOOD = 3 * CAP


@pytest.fixture
def limited(libvirt_up, guest_assets):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * FLOOD)), hard))
    workdir = qemu_workdir("hyperd-fds-")
    d = Daemon(workdir, "max_connections = 100000\n", ("prlimit", f"--nofile={NOFILE}:{NOFILE}"))
    d.start()
    yield d
    if d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _flood(path, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(path))
        out.append(s)
    return out


def _ping(path) -> tuple[int, bytes]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: hyperd\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_a_flood_gets_503_then_the_daemon_recovers_and_sigterm_stops_it(limited):
    d = limited
    idle = _flood(d.socket, FLOOD)
    try:
        time.sleep(1)
        status, body = _ping(d.socket)
        assert status == 503, body
        assert f"hyperd has {CAP} API connections open" in json.loads(body)["message"]
        res = d.hyper("ps")
        assert res.returncode == 125 and res.stderr.decode().startswith(
            f"hyper: hyperd has {CAP} API connections open"
        ), res.stderr
    finally:
        for s in idle:
            s.close()
    deadline = time.time() + 10
    while _ping(d.socket)[0] != 200:
        assert time.time() < deadline, "the daemon did not answer again after the flood"
        time.sleep(0.2)
    assert d.hyper("ps", "-q").returncode == 0
    log = d.log.read_text()
    assert "Traceback" not in log
    assert log.count("API connections open") <= 3, log[-2000:]
    idle = _flood(d.socket, FLOOD)
    try:
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(15) == 0
    finally:
        for s in idle:
            s.close()
