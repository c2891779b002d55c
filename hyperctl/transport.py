"""HTTP to hyperd (``hyperctl.httpconn``): a unix-socket connection, one request per
connection, error answers turned into the client's exceptions, streamed and hijacked bodies.
"""

from __future__ import annotations

import os
import stat

from hyperapi.errors import HyperError, InvalidArgument
from hyperctl import fastjson
from hyperctl.errors import APIError, DaemonUnreachable, api_error
from hyperctl.httpconn import Connection, Response, urlencode
from hyperctl.wire import HijackedConnection, check_stream_error, json_stream, read_body

TYPE_CHECKING = False  # for annotations only: typing (~5 ms) and collections.abc (~2 ms)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

DEFAULT_HOST = "unix:///run/hyper/hyperd.sock"
DEFAULT_TIMEOUT = 60.0


def resolve_host(base_url: str | None = None) -> str:
    """The daemon address: explicit, else ``$HYPER_HOST``, else the default socket."""
    url = base_url or os.environ.get("HYPER_HOST") or DEFAULT_HOST
    if url.startswith("/"):
        url = "unix://" + url
    return url


def bool_param(v: bool) -> str:
    """A boolean query parameter as the daemon reads it."""
    return "1" if v else "0"


class Transport:
    """Requests to one daemon address; the endpoint mixins build on its ``_request``,
    ``_send``, ``_stream``, ``_stream_json`` and ``_hijack``."""

    def __init__(self, base_url: str | None = None, timeout: float | None = DEFAULT_TIMEOUT):
        self.base_url = resolve_host(base_url)
        self.timeout = timeout
        scheme, _, rest = self.base_url.partition("://")
        if scheme in ("unix", "http+unix"):
            self._path, self._netloc = rest, None
        elif scheme in ("tcp", "http"):
            self._path, self._netloc = None, rest.partition("/")[0]
        else:
            raise InvalidArgument(f"unsupported daemon address: {self.base_url}")

    @classmethod
    def for_cli(cls, host: str | None):
        """This client as the ``hyper`` command uses it: no timeout (VMs may boot slowly)."""
        return cls(host, timeout=None)

    @property
    def address(self) -> str:
        """The socket path (or host:port) for messages."""
        return self._path or self._netloc or self.base_url

    def _connection(self, timeout: float | None) -> Connection:
        return Connection(self._path, self._netloc, timeout)

    def _io_error(self, err: Exception, what: str) -> HyperError:
        if isinstance(err, FileNotFoundError | ConnectionRefusedError):
            return DaemonUnreachable(f"cannot connect to hyperd at {self.address}: is it running?")
        if isinstance(err, PermissionError):
            return DaemonUnreachable(f"permission denied connecting to hyperd at {self.address}")
        if isinstance(err, TimeoutError):
            return HyperError(f"timed out waiting for hyperd ({what})")
        return HyperError(f"error talking to hyperd ({what}): {err}")

    @staticmethod
    def _url(path: str, params: dict | list | None) -> str:
        if not params:
            return path
        items = params.items() if isinstance(params, dict) else params
        query = urlencode([(k, v) for k, v in items if v is not None])
        return path + ("?" + query if query else "")

    def _open(
        self,
        method: str,
        path: str,
        params: dict | list | None = None,
        body: Any = None,
        headers: dict | None = None,
        timeout: float | None = -1,
    ) -> Connection:
        """Connect and send a request (the response is not read yet)."""
        if timeout == -1:
            timeout = self.timeout
        hdrs = dict(headers or {})
        if isinstance(body, dict | list):
            body = fastjson.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif body is not None and hasattr(body, "read"):
            # a file: streamed (Content-Length if regular, else chunked)
            try:
                st = os.fstat(body.fileno())
                if stat.S_ISREG(st.st_mode):
                    hdrs["Content-Length"] = str(st.st_size - body.tell())
            except (OSError, AttributeError, ValueError):
                pass
        conn = self._connection(timeout)
        try:
            conn.request(method, self._url(path, params), body=body, headers=hdrs)
        except OSError as e:
            conn.close()
            raise self._io_error(e, f"{method} {path}") from None
        return conn

    def _receive(self, conn: Connection, what: str) -> Response:
        """Read a response's status and headers; raise APIError for an error status."""
        try:
            resp = conn.getresponse()
        except OSError as e:
            conn.close()
            raise self._io_error(e, what) from None
        if resp.status >= 400:
            try:
                data = resp.read()
            except OSError:
                data = b""
            conn.close()
            raise api_error(resp.status, data, resp.reason)
        return resp

    def _send(
        self, method, path, params=None, body=None, headers=None, timeout=-1
    ) -> tuple[Connection, Response]:
        """Send a request and read the answer's headers (the body is left to read)."""
        conn = self._open(method, path, params, body, headers, timeout)
        return conn, self._receive(conn, f"{method} {path}")

    @staticmethod
    def _decode(resp: Response, data: bytes) -> Any:
        if not data:
            return None
        ctype = resp.getheader("Content-Type", "") or ""
        if "json" in ctype or data[:1] in (b"{", b"["):
            try:
                return fastjson.loads(data)
            except ValueError:
                pass
        return data.decode("utf-8", "replace")

    def _read(self, conn: Connection, resp: Response) -> Any:
        """The whole body of an answer, decoded; closes the connection."""
        try:
            data = resp.read()
        except OSError as e:
            raise HyperError(f"error reading hyperd's answer: {e}") from None
        finally:
            conn.close()
        return self._decode(resp, data)

    def _request(self, method, path, params=None, body=None, timeout=-1, headers=None) -> Any:
        """One request, its decoded answer."""
        conn, resp = self._send(method, path, params, body, headers=headers, timeout=timeout)
        return self._read(conn, resp)

    def _stream(self, method, path, params=None, body=None, headers=None) -> Iterator[bytes]:
        """The answer's body as it arrives, in chunks."""
        conn, resp = self._send(method, path, params, body, headers=headers, timeout=None)
        return read_body(conn, resp)

    def _stream_json(self, method, path, params=None, body=None, headers=None) -> Iterator[dict]:
        """The answer's JSON documents as they arrive; an ``{"error"}`` one raises."""
        for msg in json_stream(self._stream(method, path, params, body, headers)):
            yield check_stream_error(msg)

    def _hijack(self, path: str, params=None, body=None) -> HijackedConnection:
        """POST with ``Upgrade: tcp``; the raw connection once the daemon agreed."""
        headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
        conn = self._open("POST", path, params, body, headers)
        sock = conn.sock
        resp = self._receive(conn, f"POST {path}")
        if resp.status not in (101, 200):
            conn.close()
            raise APIError(f"unexpected answer to {path}: {resp.status} {resp.reason}")
        return HijackedConnection(conn, resp, sock)
