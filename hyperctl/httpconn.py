"""A small HTTP/1.1 client for hyperd's API: one request per connection over a unix (or
TCP) stream socket.

The stdlib's ``http.client`` imports the email parser and ssl, ~35 ms on every ``hyper``
run (a third of a short command's time); this needs only ``_socket``, the C module under
``socket`` (socket itself imports enum and selectors, a few ms: only TCP addresses use
it). It speaks what the daemon speaks: request bodies as bytes, files or iterables
(streamed, chunked when their length is unknown); answers framed by Content-Length,
chunked, or the connection's end; ``101`` answers whose connection is then raw both ways
(``fp`` holds what was read past the headers).
"""

from __future__ import annotations

import _socket
import io

TYPE_CHECKING = False  # for annotations only: socket (~5 ms) and collections.abc (~2 ms)
if TYPE_CHECKING:
    import socket
    from collections.abc import Iterable, Iterator

CHUNK = 64 * 1024
MAX_LINE = 64 * 1024
MAX_HEADERS = 200
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


class ProtocolError(OSError):
    """The daemon's answer is not HTTP/1.x as expected."""


class IncompleteRead(ProtocolError):
    """The connection ended before the body its framing announced."""


# --- URLs ---------------------------------------------------------------------------------


def quote(text: str, safe: str = "/") -> str:
    """Percent-encode ``text`` (UTF-8) for a URL path, as ``urllib.parse.quote``."""
    keep = _UNRESERVED.union(safe.encode())
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in text.encode())


def urlencode(pairs: Iterable[tuple[object, object]]) -> str:
    """A query string from (key, value) pairs, as ``urllib.parse.urlencode``."""
    return "&".join(f"{_quote_plus(k)}={_quote_plus(v)}" for k, v in pairs)


def _quote_plus(value: object) -> str:
    return quote(str(value), " ").replace(" ", "+")


# --- sockets ------------------------------------------------------------------------------


class UnixSocket(_socket.socket):
    """A unix stream socket: ``_socket``'s, with the part of ``socket.socket`` used here,
    ``makefile("rb")``, whose reader keeps the connection open until it is closed too."""

    __slots__ = ("__weakref__", "_io_refs", "_closed")

    def __init__(self) -> None:
        super().__init__(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self._io_refs, self._closed = 0, False

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        """A buffered reader of the socket, as ``socket.socket.makefile("rb")``."""
        if mode != "rb":
            raise ValueError(f"invalid mode {mode!r} (only rb)")
        raw = _SocketReader(self)
        self._io_refs += 1
        return io.BufferedReader(raw)

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    def close(self) -> None:
        """Close the socket once no reader of it is open."""
        self._closed = True
        if self._io_refs <= 0:
            _socket.socket.close(self)


class _SocketReader(io.RawIOBase):
    """``socket.SocketIO`` for reading only: the raw side of ``UnixSocket.makefile``."""

    def __init__(self, sock: UnixSocket) -> None:
        super().__init__()
        self._sock = sock
        self._timeout_occurred = False

    def readinto(self, b) -> int | None:
        self._checkClosed()
        if self._timeout_occurred:
            raise OSError("cannot read from timed out object")
        try:
            return self._sock.recv_into(b)
        except TimeoutError:
            self._timeout_occurred = True
            raise
        except BlockingIOError:
            return None

    def readable(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed socket.")
        return True

    def fileno(self) -> int:
        self._checkClosed()
        return self._sock.fileno()

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        self._sock._decref_socketios()
        self._sock = None


# --- requests -----------------------------------------------------------------------------


class Connection:
    """One exchange with the daemon: ``request`` connects and sends, ``getresponse``
    reads the answer's head; ``sock`` is the socket once connected."""

    def __init__(
        self, unix_path: str | None = None, netloc: str | None = None, timeout=None
    ) -> None:
        self.unix_path, self.netloc, self.timeout = unix_path, netloc, timeout
        self.sock: UnixSocket | socket.socket | None = None
        self._method = "GET"

    def connect(self) -> None:
        """Open the socket (``request`` does it first)."""
        if self.unix_path is not None:
            sock = UnixSocket()
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.unix_path)
            except OSError:
                sock.close()
                raise
        else:
            host, sep, port = (self.netloc or "").rpartition(":")
            if not sep or "]" in port:  # no port: HTTP's
                host, port = self.netloc or "", "80"
            import socket

            sock = socket.create_connection((host.strip("[]"), int(port)), self.timeout)
        self.sock = sock

    def request(self, method: str, url: str, body=None, headers: dict | None = None) -> None:
        """Send ``method url`` with ``headers`` and ``body`` (bytes, str, a binary file or
        an iterable of bytes; chunked unless its length is known)."""
        self._method = method
        hdrs = {"Host": self.netloc or "localhost", **(headers or {})}
        if "Connection" not in hdrs:
            hdrs["Connection"] = "close"
        if isinstance(body, str):
            body = body.encode()
        chunked = _frame_body(method, body, hdrs)
        head = f"{method} {url} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        self.connect()
        if body is None or isinstance(body, bytes | bytearray | memoryview):
            self.sock.sendall(head.encode("latin-1") + b"\r\n" + bytes(body or b""))
            return
        self.sock.sendall(head.encode("latin-1") + b"\r\n")
        for part in _body_parts(body):
            if part:
                self.sock.sendall(b"%x\r\n%b\r\n" % (len(part), part) if chunked else part)
        if chunked:
            self.sock.sendall(b"0\r\n\r\n")

    def getresponse(self) -> Response:
        """Read the answer's status line and headers (skipping ``100 Continue``)."""
        return Response(self.sock, self._method)

    def close(self) -> None:
        """Close the socket (a response's ``fp`` keeps it readable until closed too)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _frame_body(method: str, body, hdrs: dict) -> bool:
    """Set Content-Length when the body's length is known; True when it goes chunked."""
    if "Content-Length" in hdrs or hdrs.get("Transfer-Encoding") == "chunked":
        return hdrs.get("Transfer-Encoding") == "chunked"
    if body is None:
        if method in ("POST", "PUT", "PATCH"):
            hdrs["Content-Length"] = "0"
        return False
    if isinstance(body, bytes | bytearray | memoryview):
        hdrs["Content-Length"] = str(len(body))
        return False
    hdrs["Transfer-Encoding"] = "chunked"
    return True


def _body_parts(body) -> Iterator[bytes]:
    """A file's blocks, or the iterable's items, as bytes."""
    if hasattr(body, "read"):
        while data := body.read(CHUNK):
            yield data.encode() if isinstance(data, str) else data
        return
    for part in body:
        yield part.encode() if isinstance(part, str) else bytes(part)


# --- answers ------------------------------------------------------------------------------


class Response:
    """An answer's head (``status``, ``reason``, ``getheader``) and its body (``read``,
    ``read1``) read by its framing. For a 101 answer, ``fp`` is the raw connection."""

    def __init__(self, sock: UnixSocket | socket.socket, method: str = "GET") -> None:
        self.fp = sock.makefile("rb")
        while True:
            self.status, self.reason = self._status_line()
            self.headers = self._headers()
            if self.status == 101 or not 100 <= self.status < 200:
                break
        self._chunk_left: int | None = None  # bytes left in the current chunk
        self._done = False
        self.chunked = "chunked" in self.getheader("Transfer-Encoding", "").lower()
        self.length = None if self.chunked else self._content_length()
        if method == "HEAD" or self.status in (101, 204, 304):
            self.length, self.chunked = 0, False

    def _readline(self) -> bytes:
        line = self.fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise ProtocolError("header line too long in hyperd's answer")
        return line

    def _status_line(self) -> tuple[int, str]:
        line = self._readline()
        if not line:
            raise ProtocolError("hyperd closed the connection without answering")
        version, _, rest = line.decode("latin-1").strip().partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ProtocolError(f"malformed status line from hyperd: {line[:80]!r}")
        return int(code), reason

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            line = self._readline().decode("latin-1").rstrip("\r\n")
            if not line:
                return headers
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"malformed header line from hyperd: {line[:80]!r}")
            key, value = name.strip().lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        raise ProtocolError("too many headers in hyperd's answer")

    def _content_length(self) -> int | None:
        value = self.getheader("Content-Length")
        if value is None:
            return None
        if not value.strip().isdigit():
            raise ProtocolError(f"bad Content-Length from hyperd: {value!r}")
        return int(value)

    def getheader(self, name: str, default=None):
        """A header's value (repeated ones joined by ``, ``), or ``default``."""
        return self.headers.get(name.lower(), default)

    def read1(self, size: int = CHUNK) -> bytes:
        """Up to ``size`` bytes of the body with at most one read; b"" at its end."""
        if self._done:
            return b""
        if self.chunked:
            return self._read1_chunked(size)
        if self.length is None:
            data = self.fp.read1(size)
        else:
            data = self.fp.read1(min(size, self.length)) if self.length else b""
            if self.length and not data:
                raise IncompleteRead(f"hyperd's answer ended {self.length} bytes short")
            self.length -= len(data)
        if not data:
            self._finish()
        return data

    def _finish(self) -> None:
        """The body has been read: let go of the connection (as http.client does)."""
        self._done = True
        if self.status != 101:  # an upgraded connection stays open for its new protocol
            self.fp.close()

    def _read1_chunked(self, size: int) -> bytes:
        if not self._chunk_left:
            self._chunk_left = self._chunk_size()
            if not self._chunk_left:
                self._finish()
                return b""
        data = self.fp.read1(min(size, self._chunk_left))
        if not data:
            raise IncompleteRead("hyperd's chunked answer ended inside a chunk")
        self._chunk_left -= len(data)
        if not self._chunk_left and self._readline() not in (b"\r\n", b"\n"):
            raise ProtocolError("malformed chunk end in hyperd's answer")
        return data

    def _chunk_size(self) -> int:
        line = self._readline()
        if not line:
            raise IncompleteRead("hyperd's chunked answer ended before its last chunk")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError(f"malformed chunk size from hyperd: {line[:40]!r}") from None
        if size == 0:
            while self._readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
        return size

    def read(self, size: int | None = None) -> bytes:
        """``size`` bytes of the body (fewer only at its end), or all the rest."""
        parts, want = [], -1 if size is None or size < 0 else size
        while want:
            data = self.read1(CHUNK if want < 0 else want)
            if not data:
                break
            parts.append(data)
            want = want - len(data) if want > 0 else want
        return b"".join(parts)

    def close(self) -> None:
        """Close the reader (the socket closes once its connection has closed it too)."""
        self.fp.close()
