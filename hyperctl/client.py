"""A small synchronous client for the hyperd API (docs/api.md), stdlib only.

Methods map 1:1 to endpoints, like docker-py's ``APIClient``. Every request opens its own
connection (``http.client`` over a unix socket); streaming endpoints return generators, and
attach / exec start return a :class:`HijackedConnection`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import stat
import struct
import threading
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode, urlsplit

from hyperapi.errors import (
    KIND_BY_STATUS,
    Conflict,
    HyperError,
    InvalidArgument,
    NotFound,
    Unauthorized,
    Unavailable,
)

DEFAULT_HOST = "unix:///run/hyper/hyperd.sock"
DEFAULT_TIMEOUT = 60.0
DEFAULT_REGISTRY = "https://index.docker.io/v1/"
STDOUT, STDERR = 1, 2
CHUNK = 64 * 1024


# --- errors -------------------------------------------------------------------------------


class APIError(HyperError):
    """The daemon answered with an error (``status_code`` is its HTTP status)."""

    def __init__(self, message: str, status_code: int = 500, **data):
        super().__init__(message, **data)
        self.status_code = status_code
        self.status = status_code


class InvalidArgumentError(APIError, InvalidArgument):
    """400: a bad parameter."""


class UnauthorizedError(APIError, Unauthorized):
    """401: credentials missing or refused."""


class NotFoundError(APIError, NotFound):
    """404: no such container / image / exec."""


class ConflictError(APIError, Conflict):
    """409: name in use, container running, image in use..."""


class UnavailableError(APIError, Unavailable):
    """503: a resource is exhausted for now."""


class DaemonUnreachable(HyperError):
    """The daemon's socket cannot be reached."""


#: The exception for each kind of hyperapi.errors (Internal and unknown kinds: APIError).
ERRORS_BY_KIND: dict[str, type[APIError]] = {
    cls.kind: cls
    for cls in (
        APIError,
        InvalidArgumentError,
        UnauthorizedError,
        NotFoundError,
        ConflictError,
        UnavailableError,
    )
}


def api_error(status: int, body: bytes, reason: str = "") -> APIError:
    """The exception for an error answer: its class from the body's ``kind`` (from the
    status when a Docker-style body has none), its exit code from ``exitCode`` (else 125)."""
    message = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = str(data.get("message") or data.get("error") or "")
    else:
        data = {}
    kind = data.get("kind")
    if not isinstance(kind, str):
        kind = KIND_BY_STATUS.get(status, APIError.kind)
    err = ERRORS_BY_KIND.get(kind, APIError)(message or f"{status} {reason}".strip(), status)
    err.kind = kind
    code = data.get("exitCode")
    if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255:
        err.exit_code = code
    return err


# --- transport ----------------------------------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    """``HTTPConnection`` whose transport is a unix stream socket."""

    def __init__(self, path: str, timeout: float | None = None):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def resolve_host(base_url: str | None = None) -> str:
    """The daemon address: explicit, else ``$HYPER_HOST``, else the default socket."""
    url = base_url or os.environ.get("HYPER_HOST") or DEFAULT_HOST
    if url.startswith("/"):
        url = "unix://" + url
    return url


# --- the multiplexed stream format -------------------------------------------------------


class FrameDecoder:
    """Incremental decoder of ``[stream u8][0 0 0][size u32 BE][data]`` frames."""

    HEADER = struct.Struct(">BxxxL")

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add bytes; return every complete frame as (stream, payload)."""
        self._buf += data
        out = []
        while len(self._buf) >= 8:
            stream, size = self.HEADER.unpack_from(self._buf)
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


def read_chunks(fp: BinaryIO, size: int = CHUNK) -> Iterator[bytes]:
    """Whatever is available from a buffered reader, until EOF."""
    read = getattr(fp, "read1", fp.read)
    while True:
        try:
            data = read(size)
        except (ConnectionResetError, BrokenPipeError):
            return
        if not data:
            return
        yield data


def json_stream(chunks: Iterable[bytes]) -> Iterator[dict]:
    """JSON values from a stream of concatenated/newline-separated JSON documents."""
    decoder = json.JSONDecoder()
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
                obj, end = decoder.raw_decode(buf)
            except ValueError:
                break
            buf = buf[end:]
            yield obj
    buf = buf.strip()
    if buf:
        yield json.loads(buf)


def check_stream_error(msg: dict) -> dict:
    """Raise an APIError for a ``{"error": ...}`` line of a streaming endpoint."""
    if isinstance(msg, dict) and msg.get("error"):
        detail = msg.get("errorDetail") or {}
        raise APIError(str(detail.get("message") or msg["error"]), status_code=500)
    return msg


# --- hijacked connections -----------------------------------------------------------------


class HijackedConnection:
    """A connection taken over after ``101 UPGRADED``: raw bytes both ways.

    Read from ``fp`` (the response's buffered reader: it may already hold bytes past the
    headers), write to ``sock``.
    """

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, sock):
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
        self.sock.sendall(data)

    def close_write(self) -> None:
        """Half-close: stdin EOF for the process."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for f in (self.fp, self.sock, self._conn):
            with contextlib.suppress(Exception):
                f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PendingWait:
    """The answer of a wait request, read in a background thread."""

    def __init__(self, client: APIClient, conn: http.client.HTTPConnection, what: str):
        self._client = client
        self._conn = conn
        self._what = what
        self._result: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            resp = self._client._receive(self._conn, self._what)
            try:
                data = resp.read()
            except (OSError, http.client.HTTPException) as e:
                raise HyperError(f"error reading hyperd's answer: {e}") from None
            self._result = self._client._decode(resp, data)
        except BaseException as e:  # noqa: BLE001 - handed to result()
            self._error = e
        finally:
            self._conn.close()
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> dict:
        if not self._done.wait(timeout):
            raise HyperError("timed out waiting for the container to exit")
        if self._error is not None:
            raise self._error
        return self._result or {}


# --- the client ---------------------------------------------------------------------------


def _bool(v: bool) -> str:
    return "1" if v else "0"


class APIClient:
    """One method per endpoint of docs/api.md."""

    def __init__(self, base_url: str | None = None, timeout: float | None = DEFAULT_TIMEOUT):
        self.base_url = resolve_host(base_url)
        self.timeout = timeout
        parts = urlsplit(self.base_url)
        self._scheme = parts.scheme
        if parts.scheme in ("unix", "http+unix"):
            self._path = parts.path
            self._netloc = None
        elif parts.scheme in ("tcp", "http"):
            self._path = None
            self._netloc = parts.netloc
        else:
            raise InvalidArgument(f"unsupported daemon address: {self.base_url}")

    @property
    def address(self) -> str:
        return self._path or self._netloc or self.base_url

    # transport ----------------------------------------------------------------------------

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._path is not None:
            conn = UnixHTTPConnection(self._path, timeout=timeout)
        else:
            conn = http.client.HTTPConnection(self._netloc, timeout=timeout)
        conn.blocksize = CHUNK
        return conn

    def _unreachable(self, err: OSError) -> DaemonUnreachable:
        return DaemonUnreachable(f"cannot connect to hyperd at {self.address}: is it running?")

    def _url(self, path: str, params: dict | list | None) -> str:
        if not params:
            return path
        items = params.items() if isinstance(params, dict) else params
        query = urlencode([(k, v) for k, v in items if v is not None])
        return path + ("?" + query if query else "")

    def _io_error(self, err: Exception, what: str) -> HyperError:
        if isinstance(err, FileNotFoundError | ConnectionRefusedError):
            return self._unreachable(err)
        if isinstance(err, PermissionError):
            return DaemonUnreachable(f"permission denied connecting to hyperd at {self.address}")
        if isinstance(err, TimeoutError):
            return HyperError(f"timed out waiting for hyperd ({what})")
        return HyperError(f"error talking to hyperd ({what}): {err}")

    def _open(
        self,
        method: str,
        path: str,
        params: dict | list | None = None,
        body: Any = None,
        headers: dict | None = None,
        timeout: float | None = -1,
    ) -> http.client.HTTPConnection:
        """Connect and send a request (the response is not read yet)."""
        if timeout == -1:
            timeout = self.timeout
        url = self._url(path, params)
        hdrs = dict(headers or {})
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif body is not None and hasattr(body, "read"):
            # a file: http.client streams it (Content-Length if regular, else chunked)
            try:
                st = os.fstat(body.fileno())
                if stat.S_ISREG(st.st_mode):
                    hdrs["Content-Length"] = str(st.st_size - body.tell())
            except (OSError, AttributeError, ValueError):
                pass
        conn = self._connection(timeout)
        try:
            conn.request(method, url, body=body, headers=hdrs)
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise self._io_error(e, f"{method} {path}") from None
        return conn

    def _receive(self, conn: http.client.HTTPConnection, what: str) -> http.client.HTTPResponse:
        """Read a response's status and headers; raise APIError for an error status."""
        try:
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise self._io_error(e, what) from None
        if resp.status >= 400:
            try:
                data = resp.read()
            except (OSError, http.client.HTTPException):
                data = b""
            conn.close()
            raise api_error(resp.status, data, resp.reason)
        return resp

    def _send(
        self, method, path, params=None, body=None, headers=None, timeout=-1
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = self._open(method, path, params, body, headers, timeout)
        return conn, self._receive(conn, f"{method} {path}")

    @staticmethod
    def _decode(resp: http.client.HTTPResponse, data: bytes) -> Any:
        if not data:
            return None
        ctype = resp.getheader("Content-Type", "") or ""
        if "json" in ctype or data[:1] in (b"{", b"["):
            try:
                return json.loads(data)
            except ValueError:
                pass
        return data.decode("utf-8", "replace")

    def _request(self, method, path, params=None, body=None, timeout=-1, headers=None) -> Any:
        conn, resp = self._send(method, path, params, body, headers=headers, timeout=timeout)
        try:
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise HyperError(f"error reading hyperd's answer: {e}") from None
        finally:
            conn.close()
        return self._decode(resp, data)

    def _stream(self, method, path, params=None, body=None, headers=None) -> Iterator[bytes]:
        conn, resp = self._send(method, path, params, body, headers=headers, timeout=None)
        return _read_chunks(conn, resp)

    def _stream_json(self, method, path, params=None, body=None, headers=None) -> Iterator[dict]:
        for msg in json_stream(self._stream(method, path, params, body, headers)):
            yield check_stream_error(msg)

    def _hijack(self, path: str, params=None, body=None) -> HijackedConnection:
        headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
        conn = self._open("POST", path, params, body, headers)
        sock = conn.sock
        resp = self._receive(conn, f"POST {path}")
        if resp.status not in (101, 200):
            conn.close()
            raise APIError(f"unexpected answer to {path}: {resp.status} {resp.reason}")
        return HijackedConnection(conn, resp, sock)

    # system -------------------------------------------------------------------------------

    def ping(self) -> str:
        return self._request("GET", "/_ping")

    def version(self) -> dict:
        return self._request("GET", "/version")

    def info(self) -> dict:
        return self._request("GET", "/info")

    def login(self, username: str, password: str, registry: str | None = None) -> dict:
        body = {
            "username": username,
            "password": password,
            "serveraddress": registry or DEFAULT_REGISTRY,
        }
        return self._request("POST", "/auth", body=body)

    def logout(self, registry: str | None = None) -> dict:
        body = {"serveraddress": registry or DEFAULT_REGISTRY}
        return self._request("POST", "/auth/logout", body=body)

    # images -------------------------------------------------------------------------------

    def pull(
        self, repository: str, tag: str | None = None, platform: str | None = None
    ) -> Iterator[dict]:
        """Progress messages (dicts); raises APIError on an ``{"error": ...}`` line."""
        params = {"fromImage": repository, "tag": tag, "platform": platform}
        return self._stream_json("POST", "/images/create", params)

    def images(self, digests: bool = False) -> list[dict]:
        return self._request("GET", "/images/json", {"digests": _bool(digests)}) or []

    def inspect_image(self, image: str) -> dict:
        return self._request("GET", f"/images/{quote(image, safe='/:@')}/json")

    def remove_image(self, image: str, force: bool = False) -> list[dict]:
        params = {"force": _bool(force)}
        return self._request("DELETE", f"/images/{quote(image, safe='/:@')}", params) or []

    def tag(self, image: str, repository: str, tag: str | None = None) -> None:
        params = {"repo": repository, "tag": tag}
        self._request("POST", f"/images/{quote(image, safe='/:@')}/tag", params)

    def load(self, data: BinaryIO | bytes, quiet: bool = False) -> Iterator[dict]:
        """Upload an archive (file object streamed chunked, or bytes); JSON messages."""
        headers = {"Content-Type": "application/x-tar"}
        return self._stream_json("POST", "/images/load", {"quiet": _bool(quiet)}, data, headers)

    def get_images(self, names: list[str]) -> Iterator[bytes]:
        """The ``docker save`` tar of ``names``, as chunks."""
        return self._stream("GET", "/images/get", [("names", n) for n in names])

    def save(self, names: list[str], out: BinaryIO) -> int:
        """Write the ``docker save`` tar of ``names`` to ``out``; return bytes written."""
        n = 0
        for chunk in self.get_images(names):
            out.write(chunk)
            n += len(chunk)
        return n

    # containers ---------------------------------------------------------------------------

    def create_container(self, config: dict, name: str | None = None) -> dict:
        return self._request("POST", "/containers/create", {"name": name}, body=config)

    def containers(self, all: bool = False, filters: dict | None = None) -> list[dict]:
        params = {"all": _bool(all)}
        if filters:
            params["filters"] = json.dumps(filters)
        return self._request("GET", "/containers/json", params) or []

    def inspect_container(self, container: str) -> dict:
        return self._request("GET", f"/containers/{quote(container)}/json")

    def start(self, container: str) -> None:
        """Start; a 304 (already running) is not an error."""
        self._request("POST", f"/containers/{quote(container)}/start", timeout=None)

    def stop(self, container: str, timeout: int | None = None) -> None:
        t = None if timeout is None else int(timeout)
        self._request("POST", f"/containers/{quote(container)}/stop", {"t": t}, timeout=None)

    def restart(self, container: str, timeout: int | None = None) -> None:
        t = None if timeout is None else int(timeout)
        path = f"/containers/{quote(container)}/restart"
        self._request("POST", path, {"t": t}, timeout=None)

    def kill(self, container: str, signal: str | int | None = None) -> None:
        params = {"signal": None if signal is None else str(signal)}
        self._request("POST", f"/containers/{quote(container)}/kill", params)

    def remove_container(self, container: str, force: bool = False) -> None:
        self._request("DELETE", f"/containers/{quote(container)}", {"force": _bool(force)})

    def wait(self, container: str, condition: str | None = None) -> dict:
        """Block until the condition; ``{"StatusCode": N, "Error": ...}``."""
        params = {"condition": condition}
        return self._request("POST", f"/containers/{quote(container)}/wait", params, timeout=None)

    def wait_background(self, container: str, condition: str | None = None) -> PendingWait:
        """Send a wait request now (so it is registered before e.g. ``start``) and collect
        its answer in a thread; ``.result()`` gives ``{"StatusCode", "Error"}``."""
        path = f"/containers/{quote(container)}/wait"
        conn = self._open("POST", path, {"condition": condition}, timeout=None)
        return PendingWait(self, conn, f"POST {path}")

    def logs(
        self,
        container: str,
        stdout: bool = True,
        stderr: bool = True,
        follow: bool = False,
        timestamps: bool = False,
        tail: int | str = "all",
        since: int | float | None = None,
        tty: bool | None = None,
        demux_streams: bool = True,
    ) -> Iterator[tuple[int, bytes]] | Iterator[bytes]:
        """(stream, bytes) pairs (stream 1/2; always 1 for a tty container), or raw chunks
        when ``demux_streams`` is false."""
        params = {
            "stdout": _bool(stdout),
            "stderr": _bool(stderr),
            "follow": _bool(follow),
            "timestamps": _bool(timestamps),
            "tail": str(tail),
            "since": None if since is None else str(since),
        }
        path = f"/containers/{quote(container)}/logs"
        conn, resp = self._send("GET", path, params, timeout=None)
        ctype = resp.getheader("Content-Type", "") or ""
        if tty is None:
            if "raw-stream" in ctype:
                tty = True
            elif "multiplexed-stream" in ctype:
                tty = False
            else:
                try:
                    tty = bool(self.inspect_container(container)["Config"].get("Tty"))
                except (HyperError, KeyError, TypeError):
                    tty = False

        chunks = _read_chunks(conn, resp)
        if not demux_streams:
            return chunks
        if tty:
            return ((STDOUT, c) for c in chunks)
        return demux(chunks)

    def attach_socket(
        self,
        container: str,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        stream: bool = True,
        logs: bool = False,
    ) -> HijackedConnection:
        params = {
            "stream": _bool(stream),
            "stdin": _bool(stdin),
            "stdout": _bool(stdout),
            "stderr": _bool(stderr),
            "logs": _bool(logs),
        }
        return self._hijack(f"/containers/{quote(container)}/attach", params)

    def resize(self, container: str, height: int, width: int) -> None:
        self._request("POST", f"/containers/{quote(container)}/resize", {"h": height, "w": width})

    # exec ---------------------------------------------------------------------------------

    def exec_create(
        self,
        container: str,
        cmd: list[str],
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        tty: bool = False,
        environment: list[str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        console_size: tuple[int, int] | None = None,
    ) -> dict:
        body: dict[str, Any] = {
            "AttachStdin": stdin,
            "AttachStdout": stdout,
            "AttachStderr": stderr,
            "Tty": tty,
            "Cmd": list(cmd),
        }
        if environment:
            body["Env"] = list(environment)
        if workdir:
            body["WorkingDir"] = workdir
        if user:
            body["User"] = user
        if console_size:
            body["ConsoleSize"] = list(console_size)
        return self._request("POST", f"/containers/{quote(container)}/exec", body=body)

    def exec_start(
        self,
        exec_id: str,
        detach: bool = False,
        tty: bool = False,
        console_size: tuple[int, int] | None = None,
    ) -> HijackedConnection | None:
        """The hijacked connection, or None when detached."""
        body: dict[str, Any] = {"Detach": detach, "Tty": tty}
        if console_size:
            body["ConsoleSize"] = list(console_size)
        if detach:
            self._request("POST", f"/exec/{quote(exec_id)}/start", body=body)
            return None
        return self._hijack(f"/exec/{quote(exec_id)}/start", body=body)

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        self._request("POST", f"/exec/{quote(exec_id)}/resize", {"h": height, "w": width})

    def exec_inspect(self, exec_id: str) -> dict:
        return self._request("GET", f"/exec/{quote(exec_id)}/json")

    # networks -----------------------------------------------------------------------------

    def create_network(self, body: dict) -> dict:
        return self._request("POST", "/networks/create", body=body)

    def networks(self, filters: dict | None = None) -> list[dict]:
        params = {"filters": json.dumps(filters)} if filters else None
        return self._request("GET", "/networks", params) or []

    def inspect_network(self, net: str) -> dict:
        return self._request("GET", f"/networks/{quote(net)}")

    def remove_network(self, net: str) -> None:
        self._request("DELETE", f"/networks/{quote(net)}")

    def connect_network(
        self, net: str, container: str, aliases=(), ipv4: str = "", links=()
    ) -> None:
        endpoint: dict = {"Aliases": list(aliases), "Links": list(links)}
        if ipv4:
            endpoint["IPAMConfig"] = {"IPv4Address": ipv4}
        body = {"Container": container, "EndpointConfig": endpoint}
        self._request("POST", f"/networks/{quote(net)}/connect", body=body, timeout=None)

    def disconnect_network(self, net: str, container: str, force: bool = False) -> None:
        body = {"Container": container, "Force": force}
        self._request("POST", f"/networks/{quote(net)}/disconnect", body=body, timeout=None)

    def prune_networks(self, filters: dict | None = None) -> dict:
        params = {"filters": json.dumps(filters)} if filters else None
        return self._request("POST", "/networks/prune", params) or {}


def _read_chunks(conn, resp) -> Iterator[bytes]:
    """A streamed response body chunk by chunk, until EOF; closes the connection."""
    try:
        while True:
            try:
                data = resp.read1(CHUNK)
            except (http.client.IncompleteRead, ConnectionError):
                return
            if not data:
                return
            yield data
    finally:
        conn.close()
