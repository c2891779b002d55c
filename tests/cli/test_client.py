"""The API client: stream demultiplexing, JSON streams, errors, hijacking (fake daemon)."""

from __future__ import annotations

import json
import struct

import pytest

from hyperapi.errors import KINDS, Conflict, HyperError, InvalidArgument, NotFound
from hyperctl.client import (
    ERRORS_BY_KIND,
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


def test_api_errors_from_docker_style_bodies_follow_the_status():
    e = api_error(404, b'{"message": "No such image: foo:latest"}')
    assert isinstance(e, NotFoundError) and isinstance(e, NotFound)
    assert e.message == "No such image: foo:latest" and e.status_code == 404
    assert isinstance(api_error(409, b"{}"), ConflictError)
    assert isinstance(api_error(409, b"{}"), Conflict)
    assert isinstance(api_error(400, b"bad"), InvalidArgumentError)
    assert isinstance(api_error(400, b"bad"), InvalidArgument)
    assert api_error(400, b"bad").message == "bad"
    e = api_error(500, b"")
    assert type(e) is APIError and e.message == "500" and e.exit_code == 125


def test_api_errors_are_built_from_kind_and_exit_code_not_from_the_message():
    body = b'{"message": "exec: \\"x\\": executable file not found", "kind": "Conflict"}'
    e = api_error(500, body)
    assert isinstance(e, ConflictError) and e.kind == "Conflict" and e.exit_code == 125
    e = api_error(
        400, b'{"message": "permission denied", "kind": "InvalidArgument", "exitCode": 126}'
    )
    assert isinstance(e, InvalidArgumentError) and e.exit_code == 126
    e = api_error(400, b'{"message": "m", "kind": "InvalidArgument", "exitCode": 127}')
    assert e.exit_code == 127 and e.message == "m"
    for bad in (b'"x"', b"999", b"-1", b"true", b"null"):
        e = api_error(404, b'{"message": "m", "kind": "NotFound", "exitCode": ' + bad + b"}")
        assert isinstance(e, NotFoundError) and e.exit_code == 125
    e = api_error(418, b'{"message": "m", "kind": "Teapot", "exitCode": 3}')
    assert type(e) is APIError and e.kind == "Teapot" and e.exit_code == 3


def test_every_shared_kind_has_a_client_exception():
    assert set(ERRORS_BY_KIND) == set(KINDS)
    for kind, cls in ERRORS_BY_KIND.items():
        assert issubclass(cls, APIError) and issubclass(cls, KINDS[kind])
        err = api_error(KINDS[kind].status, json.dumps({"message": "m", "kind": kind}).encode())
        assert type(err) is cls and err.kind == kind and err.status == KINDS[kind].status


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
