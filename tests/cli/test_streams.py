"""Stream pumping and pull progress rendering."""

from __future__ import annotations

import io
import os
import signal
import struct
import threading

from hyperctl import streams


def test_pull_progress_plain():
    out = io.StringIO()
    p = streams.PullProgress(out, tty=False)
    for msg in [
        {"status": "Pulling from library/x", "id": "latest"},
        {"status": "Downloading", "id": "aaa", "progressDetail": {"current": 1, "total": 9}},
        {"status": "Downloading", "id": "aaa", "progressDetail": {"current": 5, "total": 9}},
        {"status": "Pull complete", "id": "aaa", "progressDetail": {}},
        {"status": "Digest: sha256:abc"},
    ]:
        p.show(msg)
    assert out.getvalue() == (
        "latest: Pulling from library/x\naaa: Downloading\naaa: Pull complete\nDigest: sha256:abc\n"
    )


def test_pull_progress_tty_updates_in_place():
    out = io.StringIO()
    p = streams.PullProgress(out, tty=True)
    p.show({"status": "Pulling fs layer", "id": "aaa"})
    p.show({"status": "Pulling fs layer", "id": "bbb"})
    p.show({"status": "Downloading", "id": "aaa", "progressDetail": {"current": 5, "total": 10}})
    text = out.getvalue()
    assert "\x1b[2A" in text  # moved up two lines to rewrite aaa
    assert "aaa: Downloading [=========================>" in text
    assert "5B/10B" in text


def test_progress_bar():
    assert streams.progress_bar(0, 100, width=10).startswith("[>         ]")
    assert streams.progress_bar(100, 100, width=10).startswith("[==========]")
    assert streams.human_bytes(1_500_000) == "1.5MB"


class FakeConn:
    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)
        self.sent = b""
        self.half_closed = False

    def frames(self, tty):
        from hyperctl.client import demux

        chunks = iter(lambda: self._data.read(3), b"")
        return ((1, c) for c in chunks) if tty else demux(chunks)

    def send(self, data):
        self.sent += data

    def close_write(self):
        self.half_closed = True

    def close(self):
        pass


def test_stream_pump_splits_streams_and_pumps_stdin():
    raw = struct.pack(">BxxxI", 1, 3) + b"out" + struct.pack(">BxxxI", 2, 3) + b"err"
    conn = FakeConn(raw)
    out, err = io.BytesIO(), io.BytesIO()
    pump = streams.StreamPump(conn, False, stdin=io.BytesIO(b"input"), stdout=out, stderr=err)
    pump.run()
    pump._in_thread.join(5)
    assert out.getvalue() == b"out" and err.getvalue() == b"err"
    assert conn.sent == b"input" and conn.half_closed


def test_stream_pump_tty_raw():
    conn = FakeConn(b"\x1b[1mraw\r\n")
    out = io.BytesIO()
    streams.StreamPump(conn, True, stdout=out, stderr=io.BytesIO()).run()
    assert out.getvalue() == b"\x1b[1mraw\r\n"


def test_signal_proxy_forwards_signals_by_name_and_restores_handlers():
    before = signal.getsignal(signal.SIGUSR1)
    forwarded = threading.Event()
    names = []
    with streams.SignalProxy(lambda name: names.append(name) or forwarded.set()):
        os.kill(os.getpid(), signal.SIGUSR1)
        assert forwarded.wait(5)
    assert names == ["SIGUSR1"]
    assert signal.getsignal(signal.SIGUSR1) == before
