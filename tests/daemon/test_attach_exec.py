"""Hijacked sessions as Docker has them: exec output framed by the start's Tty, detach keys
(ctrl-p ctrl-q, or the exec's DetachKeys / attach's detachKeys) that end a tty session and
leave the process running, and attach over a websocket. One tty container serves them all."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import aiohttp
import docker
import pytest

pytestmark = pytest.mark.vm
IMG = "busybox"


@pytest.fixture(scope="module")
def tty_cat(api):
    """A running container: `cat` on a terminal, stdin open."""
    c = api.create_container(IMG, "cat", tty=True, stdin_open=True)
    api.start(c)
    yield c["Id"]
    api.remove_container(c, force=True)


def _raw(sock) -> socket.socket:
    return getattr(sock, "_sock", sock)


def _read_until_eof(sock, timeout: float = 30) -> bytes:
    """Everything the daemon sends until it closes the connection."""
    s = _raw(sock)
    s.settimeout(timeout)
    out = b""
    while chunk := s.recv(4096):
        out += chunk
    return out


def _running(api, exec_id: str) -> bool:
    return api.exec_inspect(exec_id)["Running"]


def test_exec_output_is_framed_unless_the_start_asks_for_a_tty(api, tty_cat):
    ex = api.exec_create(tty_cat, ["printf", "abc"], tty=True)
    sock = api.exec_start(ex, socket=True)  # docker-py starts with Tty false
    head = _raw(sock).recv(8)
    assert struct.unpack(">BxxxL", head) == (1, 3)
    assert _read_until_eof(sock) == b"abc"
    ex = api.exec_create(tty_cat, ["printf", "abc"], tty=True)
    assert api.exec_start(ex, tty=True) == b"abc"  # raw: a tty start reads no frames


@pytest.mark.parametrize("keys, typed", [(None, b"\x10\x11"), ("ctrl-x", b"\x18")])
def test_detach_keys_end_an_exec_session_and_leave_it_running(api, tty_cat, keys, typed):
    ex = api.exec_create(tty_cat, "cat", stdin=True, tty=True, detach_keys=keys)
    sock = api.exec_start(ex, tty=True, socket=True)
    _raw(sock).sendall(b"hello\n")
    time.sleep(1)
    _raw(sock).sendall(typed)
    out = _read_until_eof(sock)
    assert b"hello" in out and b"^P" not in out and b"^X" not in out  # keys never echoed
    assert _running(api, ex["Id"])
    api.exec_resize(ex, 24, 80)  # still a live exec: its terminal takes a new size


def test_a_broken_sequence_reaches_the_process(api, tty_cat):
    ex = api.exec_create(tty_cat, ["sh", "-c", "read line; echo got:$line"], stdin=True, tty=True)
    sock = api.exec_start(ex, tty=True, socket=True)
    _raw(sock).sendall(b"\x10a\n")  # ctrl-p, then not ctrl-q: both go to the shell
    out = _read_until_eof(sock)
    assert b"got:\x10a" in out
    assert api.exec_inspect(ex)["ExitCode"] == 0


def test_bad_detach_keys_are_refused(api, tty_cat):
    with pytest.raises(docker.errors.APIError, match="Invalid detach keys"):
        api.exec_create(tty_cat, "cat", detach_keys="ctrl-")


@pytest.mark.parametrize("keys, typed", [(None, b"\x10\x11"), ("ctrl-x", b"\x18")])
def test_detach_keys_end_an_attach_and_leave_the_container_running(api, tty_cat, keys, typed):
    params = {"stdin": True, "stdout": True, "stream": True}
    if keys:
        params["detachKeys"] = keys
    sock = api.attach_socket(tty_cat, params)
    _raw(sock).sendall(b"one\n")
    time.sleep(1)
    _raw(sock).sendall(typed)
    assert b"one" in _read_until_eof(sock)
    assert api.inspect_container(tty_cat)["State"]["Running"]


def test_attach_over_a_websocket(daemon, tty_cat):
    async def session() -> bytes:
        conn = aiohttp.UnixConnector(path=str(daemon.socket))
        async with aiohttp.ClientSession(connector=conn) as http:
            url = f"http://localhost/v1.41/containers/{tty_cat}/attach/ws"
            params = {"stdin": "1", "stdout": "1", "stream": "1"}
            async with http.ws_connect(url, params=params) as ws:
                await ws.send_bytes(b"over ws\n")
                got = b""
                while got.count(b"over ws") < 2:  # the terminal's echo, then cat's copy
                    msg = await asyncio.wait_for(ws.receive(), 30)
                    assert msg.type == aiohttp.WSMsgType.BINARY, msg
                    got += msg.data
                return got

    assert b"over ws\r\n" in asyncio.run(session())


def test_a_detached_execs_output_never_blocks_the_others(api, tty_cat):
    """Nobody reads a detached exec's output: it is discarded, so a flood from it cannot
    fill the VM's output channel and stall the execs that follow."""
    flood = api.exec_create(tty_cat, ["sh", "-c", "head -c 20000000 /dev/zero; echo done"])
    api.exec_start(flood, detach=True)
    deadline = time.time() + 120
    while api.exec_inspect(flood)["Running"] and time.time() < deadline:
        time.sleep(0.5)
    assert api.exec_inspect(flood)["ExitCode"] == 0
    ex = api.exec_create(tty_cat, ["echo", "after"])
    assert api.exec_start(ex) == b"after\n"


def test_output_waits_until_the_client_has_read_the_upgrade_answer(api, daemon):
    """docker-py parses the 101 answer through a buffered reader, then reads the stream
    from the raw socket: output sent along with the answer would sit in that buffer and be
    lost (docker/docker-py#3332). The daemon waits until the answer has been read."""
    c = api.create_container(IMG, ["echo", "logged"])
    api.start(c)
    api.wait(c)
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(daemon.socket))
    s.sendall(
        f"POST /v1.41/containers/{c['Id']}/attach?logs=1&stdout=1&stream=0 HTTP/1.1\r\n"
        "Host: localhost\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
        .encode()
    )  # fmt: skip
    time.sleep(0.5)  # a slow client: the log is ready long before it reads
    answer = s.makefile("rb")  # as http.client reads the answer
    assert answer.readline().startswith(b"HTTP/1.1 101")
    while answer.readline() not in (b"\r\n", b""):
        pass
    assert _read_until_eof(s) == struct.pack(">BxxxL", 1, 7) + b"logged\n"
