"""The API client: stream demultiplexing, JSON streams, errors, hijacking (fake daemon)."""

from __future__ import annotations

import struct

import pytest

from hyperapi.errors import Conflict, HyperError, InvalidArgument, NotFound
from hyperctl.client import (
    APIClient,
    APIError,
    ConflictError,
    DaemonUnreachable,
    FrameDecoder,
    InvalidArgumentError,
    NotFoundError,
    api_error,
    demux,
    json_stream,
    resolve_host,
)


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(data)) + data


def test_demux_whole_and_split():
    raw = frame(1, b"hello\n") + frame(2, b"err\n") + frame(1, b"") + frame(1, b"x" * 70000)
    assert list(demux([raw])) == [(1, b"hello\n"), (2, b"err\n"), (1, b""), (1, b"x" * 70000)]
    # byte by byte: same frames
    assert list(demux(raw[i : i + 1] for i in range(len(raw)))) == list(demux([raw]))


def test_frame_decoder_pending_and_garbage():
    dec = FrameDecoder()
    data = frame(2, b"abc")
    assert dec.feed(data[:5]) == []
    assert dec.pending == 5
    assert dec.feed(data[5:]) == [(2, b"abc")]
    assert dec.pending == 0
    with pytest.raises(APIError):
        FrameDecoder().feed(b"HTTP/1.1 500 Internal")


def test_json_stream():
    chunks = [b'{"a": 1}\r\n{"b"', b": 2}", b'{"c": "\xc3', b'\xa9"}\n', b"  "]
    assert list(json_stream(chunks)) == [{"a": 1}, {"b": 2}, {"c": "é"}]


def test_api_errors():
    e = api_error(404, b'{"message": "No such image: foo:latest"}')
    assert isinstance(e, NotFoundError) and isinstance(e, NotFound)
    assert e.message == "No such image: foo:latest" and e.status_code == 404
    assert isinstance(api_error(409, b"{}"), ConflictError)
    assert isinstance(api_error(409, b"{}"), Conflict)
    assert isinstance(api_error(400, b"bad"), InvalidArgumentError)
    assert isinstance(api_error(400, b"bad"), InvalidArgument)
    e = api_error(500, b"")
    assert type(e) is APIError and e.message == "500" and e.exit_code == 125


def test_resolve_host(monkeypatch):
    monkeypatch.delenv("HYPER_HOST", raising=False)
    assert resolve_host() == "unix:///run/hyper/hyperd.sock"
    monkeypatch.setenv("HYPER_HOST", "unix:///tmp/x.sock")
    assert resolve_host() == "unix:///tmp/x.sock"
    assert resolve_host("/tmp/y.sock") == "unix:///tmp/y.sock"
    with pytest.raises(HyperError):
        APIClient("ftp://nope")


def test_unreachable(tmp_path):
    c = APIClient(f"unix://{tmp_path}/none.sock")
    with pytest.raises(DaemonUnreachable) as exc:
        c.ping()
    assert str(exc.value) == f"cannot connect to hyperd at {tmp_path}/none.sock: is it running?"
