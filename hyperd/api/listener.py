"""The API socket's accept loop: a cap on open connections, and descriptor exhaustion met by
pausing, not by a storm of tracebacks.

asyncio's own server accepts as fast as clients connect; past the process's descriptor limit
every ``accept()`` fails, each failure is logged, and the daemon has no descriptor left for
its VMs' files. Here connections past ``cap`` are answered at once with a 503 naming the
limit and closed (the client gets a clear error, not a hang), and EMFILE/ENFILE pause accepting
for a moment (one warning per pause window) until clients leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import socket
import time
from pathlib import Path

from aiohttp import web

from hyperapi.errors import Unavailable

log = logging.getLogger(__name__)

#: accept() errors that mean "out of descriptors or memory for now": pause, then retry.
EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
PAUSE = 0.25  # seconds without accepting after EXHAUSTED
WARN_EVERY = 10.0
BACKLOG = 1024
REFUSING_MAX = 64  # 503s being answered at once; past that, accepting waits for one
HEAD_WAIT = 0.2  # seconds a refused client gets to send its request head
CLOSE_WAIT = 1.0  # and to read the 503 and close


def busy_response(cap: int) -> bytes:
    """The whole answer to a connection past the cap (Docker's error body)."""
    err = Unavailable(
        f"hyperd has {cap} API connections open (its limit, config max_connections); "
        "try again when some close"
    )
    body = json.dumps(err.to_dict()).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class Listener:
    """Serves ``runner``'s application on the unix socket at ``path``, at most ``cap``
    connections at a time."""

    def __init__(self, runner: web.AppRunner, path: Path, cap: int):
        self.runner, self.path, self.cap = runner, path, cap
        self._sock: socket.socket | None = None
        self._task: asyncio.Task | None = None
        self._busy = busy_response(cap)
        self._warned = 0.0
        self.refused = 0  # connections answered 503 since the last warning
        self._refusing: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Bind, listen and start accepting."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        sock.listen(BACKLOG)
        sock.setblocking(False)
        self._sock = sock
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="api-accept")

    async def close(self) -> None:
        """Stop accepting (open connections are the runner's to close)."""
        for task in [self._task, *self._refusing]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._sock is not None:
            self._sock.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        server = self.runner.server
        assert self._sock is not None and server is not None
        while True:
            if len(self._refusing) >= REFUSING_MAX:  # clients wait in the backlog meanwhile
                await asyncio.wait(self._refusing, return_when=asyncio.FIRST_COMPLETED)
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except OSError as e:
                if e.errno not in EXHAUSTED:
                    raise
                self._warn(f"out of descriptors ({e.strerror}): not accepting API connections")
                await asyncio.sleep(PAUSE)
                continue
            if len(server.connections) >= self.cap:
                self._refuse(conn)
                continue
            conn.setblocking(False)
            try:
                await loop.connect_accepted_socket(server, sock=conn)
            except OSError as e:
                conn.close()
                self._warn(f"could not serve an API connection: {e}")

    def _refuse(self, conn: socket.socket) -> None:
        self.refused += 1
        self._warn(f"{self.cap} API connections open (max_connections): answering 503")
        task = asyncio.get_running_loop().create_task(self._answer_busy(conn))
        self._refusing.add(task)
        task.add_done_callback(self._refusing.discard)

    async def _answer_busy(self, conn: socket.socket) -> None:
        """Read the request's head, answer 503, and read on to the client's close: a unix
        socket closed with unread input resets the peer, which would lose the answer."""
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        try:
            async with asyncio.timeout(HEAD_WAIT):
                data = b""
                while b"\r\n\r\n" not in data and len(data) < 65536:
                    chunk = await loop.sock_recv(conn, 4096)
                    if not chunk:
                        return
                    data += chunk
            async with asyncio.timeout(CLOSE_WAIT):
                await loop.sock_sendall(conn, self._busy)
                conn.shutdown(socket.SHUT_WR)
                while await loop.sock_recv(conn, 65536):
                    pass
        except (TimeoutError, OSError):
            pass
        finally:
            conn.close()

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:
            suffix = f" ({self.refused} refused)" if self.refused else ""
            log.warning("%s%s", message, suffix)
            self._warned, self.refused = now, 0
