"""What travels on a connection to hyperd besides plain JSON: Docker's multiplexed stdio
frames, streams of JSON documents, and connections hijacked after ``101 UPGRADED``."""

from __future__ import annotations

from _socket import SHUT_WR

from hyperctl import fastjson
from hyperctl.errors import APIError
from hyperctl.httpconn import CHUNK, IncompleteRead

TYPE_CHECKING = False  # for annotations only: typing (~5 ms) and collections.abc (~2 ms)
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from hyperctl.httpconn import Connection, Response

STDOUT, STDERR = 1, 2


# --- the multiplexed stream format -------------------------------------------------------


class FrameDecoder:
    """Incremental decoder of ``[stream u8][0 0 0][size u32 BE][data]`` frames."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add bytes; return every complete frame as (stream, payload)."""
        self._buf += data
        out = []
        while len(self._buf) >= 8:
            stream, size = self._buf[0], int.from_bytes(self._buf[4:8], "big")
            if stream > 2 or self._buf[1:4] != b"\0\0\0":
                raise APIError(f"malformed multiplexed stream (header {bytes(self._buf[:8])!r})")
            if len(self._buf) < 8 + size:
                break
            out.append((stream, bytes(self._buf[8 : 8 + size])))
            del self._buf[: 8 + size]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered."""
        return len(self._buf)


def demux(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(stream, payload) pairs from an iterable of raw multiplexed bytes."""
    dec = FrameDecoder()
    for chunk in chunks:
        yield from dec.feed(chunk)


# --- JSON streams -------------------------------------------------------------------------


def json_stream(chunks: Iterable[bytes]) -> Iterator[dict]:
    """JSON values from a stream of concatenated/newline-separated JSON documents."""
    buf = ""
    pending = b""
    for chunk in chunks:
        pending += chunk
        try:
            buf += pending.decode("utf-8")
            pending = b""
        except UnicodeDecodeError:
            continue  # a split multi-byte character: wait for the rest
        while True:
            buf = buf.lstrip()
            if not buf:
                break
            try:
                obj, end = fastjson.raw_decode(buf)
            except ValueError:
                break
            buf = buf[end:]
            yield obj
    buf = buf.strip()
    if buf:
        yield fastjson.loads(buf)


def check_stream_error(msg: dict) -> dict:
    """Raise an APIError for a ``{"error": ...}`` line of a streaming endpoint."""
    if isinstance(msg, dict) and msg.get("error"):
        detail = msg.get("errorDetail") or {}
        raise APIError(str(detail.get("message") or msg["error"]), status_code=500)
    return msg


def read_body(conn: Connection, resp: Response) -> Iterator[bytes]:
    """A streamed response body chunk by chunk, until EOF; closes the connection."""
    try:
        while True:
            try:
                data = resp.read1(CHUNK)
            except (IncompleteRead, ConnectionError):
                return
            if not data:
                return
            yield data
    finally:
        conn.close()


# --- hijacked connections -----------------------------------------------------------------


class HijackedConnection:
    """A connection taken over after ``101 UPGRADED``: raw bytes both ways.

    Read from ``fp`` (the response's buffered reader: it may already hold bytes past the
    headers), write to ``sock``.
    """

    def __init__(self, conn: Connection, resp: Response, sock):
        self._conn = conn
        self._resp = resp
        self.sock = sock
        self.fp = resp.fp
        ctype = resp.getheader("Content-Type", "") or ""
        self.content_type = ctype
        self.tty = "raw-stream" in ctype
        self.multiplexed = "multiplexed-stream" in ctype
        sock.settimeout(None)

    def read(self, size: int = CHUNK) -> bytes:
        """Some bytes (b"" at EOF)."""
        try:
            return self.fp.read1(size)
        except (ConnectionResetError, BrokenPipeError, ValueError, OSError):
            return b""

    def chunks(self) -> Iterator[bytes]:
        """Raw bytes until EOF."""
        while True:
            data = self.read()
            if not data:
                return
            yield data

    def frames(self, tty: bool | None = None) -> Iterator[tuple[int, bytes]]:
        """(stream, bytes): demultiplexed, or (1, raw bytes) when the stream is a tty's."""
        raw = self.tty if tty is None else tty
        if raw:
            for data in self.chunks():
                yield STDOUT, data
        else:
            yield from demux(self.chunks())

    def send(self, data: bytes) -> None:
        """Write bytes (the process's stdin)."""
        self.sock.sendall(data)

    def close_write(self) -> None:
        """Half-close: stdin EOF for the process."""
        try:
            self.sock.shutdown(SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        """Close both ways."""
        for f in (self.fp, self.sock, self._conn):
            try:
                f.close()
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
