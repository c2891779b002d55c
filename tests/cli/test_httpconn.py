"""hyperctl.httpconn: the CLI's HTTP/1.1 client, against canned answers on a unix socket."""

from __future__ import annotations

import io
import socket
import threading
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperctl.httpconn import Connection, IncompleteRead, ProtocolError, quote, urlencode


@given(st.text())
def test_quote_matches_urllib(text):
    assert quote(text) == urllib.parse.quote(text)
    assert quote(text, "") == urllib.parse.quote(text, "")


@given(st.lists(st.tuples(st.text(), st.one_of(st.text(), st.integers(), st.booleans()))))
def test_urlencode_matches_urllib(pairs):
    assert urlencode(pairs) == urllib.parse.urlencode(pairs)


OPENED: list = []  # each test's client connections and answers, closed after it


@pytest.fixture(autouse=True)
def _close_connections():
    yield
    while OPENED:
        OPENED.pop().close()


class Server:
    """Accepts one connection on a unix socket, records the request, sends ``answer``."""

    def __init__(self, tmp_path, answer: bytes, keep_open: bool = False):
        self.path = str(tmp_path / "s.sock")
        self.answer, self.keep_open = answer, keep_open
        self.request = b""
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        with self.listener:
            conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(5)
            while b"\r\n\r\n" not in self.request:
                self.request += conn.recv(65536)
            head, _, body = self.request.partition(b"\r\n\r\n")
            if b"chunked" in head:
                while not body.endswith(b"0\r\n\r\n"):
                    body += conn.recv(65536)
            elif b"Content-Length: " in head:
                size = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                while len(body) < size:
                    body += conn.recv(65536)
            self.request = head + b"\r\n\r\n" + body
            conn.sendall(self.answer)
            if self.keep_open:
                self.echo = conn.recv(100)

    def exchange(self, method="GET", url="/x", body=None, headers=None, timeout=5):
        conn = Connection(self.path, timeout=timeout)
        OPENED.append(conn)
        conn.request(method, url, body, headers)
        resp = conn.getresponse()
        OPENED.append(resp)
        return conn, resp


def test_content_length_body_and_headers(tmp_path):
    srv = Server(
        tmp_path, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhelloEXTRA"
    )
    conn, resp = srv.exchange("POST", "/c?a=1", b'{"k": 1}', {"Content-Type": "application/json"})
    assert (resp.status, resp.reason, resp.getheader("x-A")) == (200, "OK", "1, 2")
    assert resp.read() == b"hello"
    assert resp.read() == b""
    conn.close()
    srv.thread.join(5)
    assert srv.request.startswith(b"POST /c?a=1 HTTP/1.1\r\nHost: localhost\r\n")
    assert b"Content-Length: 8\r\n" in srv.request
    assert srv.request.endswith(b'\r\n\r\n{"k": 1}')


def test_chunked_answer_read_in_pieces(tmp_path):
    srv = Server(
        tmp_path,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n5;ext=1\r\ndefgh\r\n0\r\nTrailer: x\r\n\r\n",
    )
    _, resp = srv.exchange()
    assert resp.read1(2) == b"ab"
    assert resp.read(4) == b"cdef"
    assert resp.read() == b"gh"
    assert resp.read1() == b""


def test_body_to_the_end_of_the_connection(tmp_path):
    srv = Server(tmp_path, b"HTTP/1.0 200 OK\r\n\r\nall of it")
    _, resp = srv.exchange()
    assert resp.read() == b"all of it"


def test_the_answer_outlives_the_connection_until_read(tmp_path):
    """As socket.socket's makefile: closing the connection first leaves the answer
    readable; the socket closes once its reader has closed too."""
    srv = Server(tmp_path, b"HTTP/1.0 200 OK\r\n\r\nall of it")
    conn, resp = srv.exchange()
    sock = conn.sock
    conn.close()
    assert sock.fileno() != -1
    assert resp.read() == b"all of it"
    assert sock.fileno() == -1


def test_a_read_that_times_out_raises_then_refuses(tmp_path):
    srv = Server(tmp_path, b"HTTP/1.1 200 OK\r\n\r\nsome", keep_open=True)
    _, resp = srv.exchange(timeout=0.2)
    assert resp.read1() == b"some"
    with pytest.raises(TimeoutError):
        resp.read1()
    with pytest.raises(OSError, match="timed out object"):
        resp.read1()


def test_head_and_no_content_have_no_body(tmp_path):
    srv = Server(tmp_path, b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
    _, resp = srv.exchange("HEAD")
    assert resp.read() == b""


def test_short_bodies_raise(tmp_path):
    srv = Server(tmp_path, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    _, resp = srv.exchange()
    with pytest.raises(IncompleteRead):
        resp.read()


def test_chunked_answer_cut_short_raises(tmp_path):
    srv = Server(tmp_path, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
    _, resp = srv.exchange()
    with pytest.raises(IncompleteRead):
        resp.read()


@pytest.mark.parametrize("answer", [b"", b"SMTP ready\r\n\r\n", b"HTTP/1.1 200 OK\r\nbad\r\n\r\n"])
def test_malformed_answers(tmp_path, answer):
    srv = Server(tmp_path, answer)
    with pytest.raises(ProtocolError):
        srv.exchange()


def test_continue_is_skipped(tmp_path):
    srv = Server(tmp_path, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    _, resp = srv.exchange("DELETE")
    assert resp.status == 204 and resp.read() == b""


def test_upgrade_leaves_the_connection_raw(tmp_path):
    srv = Server(tmp_path, b"HTTP/1.1 101 UPGRADED\r\nUpgrade: tcp\r\n\r\n\x01\x00", True)
    conn, resp = srv.exchange("POST", "/exec/x/start", b"{}", {"Connection": "Upgrade"})
    assert resp.status == 101
    assert resp.fp.read1(10) == b"\x01\x00"
    conn.sock.sendall(b"stdin")
    srv.thread.join(5)
    assert srv.echo == b"stdin"
    assert b"Connection: Upgrade\r\n" in srv.request and b"close" not in srv.request


@pytest.mark.parametrize(
    "body", [io.BytesIO(b"file body"), [b"file ", b"body"], iter([b"file body"])]
)
def test_streamed_bodies_are_chunked(tmp_path, body):
    srv = Server(tmp_path, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    srv.exchange("PUT", "/a", body)
    srv.thread.join(5)
    head, _, sent = srv.request.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    chunks, rest = [], sent
    while True:
        size, _, rest = rest.partition(b"\r\n")
        if int(size, 16) == 0:
            break
        chunks.append(rest[: int(size, 16)])
        rest = rest[int(size, 16) + 2 :]
    assert b"".join(chunks) == b"file body"


def test_a_file_of_known_length_is_sent_as_is(tmp_path):
    srv = Server(tmp_path, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    srv.exchange("POST", "/load", io.BytesIO(b"tar"), {"Content-Length": "3"})
    srv.thread.join(5)
    assert srv.request.endswith(b"Content-Length: 3\r\nConnection: close\r\n\r\ntar")
