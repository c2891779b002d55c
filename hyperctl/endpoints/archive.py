"""A container's files: ``HEAD``/``GET``/``PUT /containers/{id}/archive`` (``docker cp``).

Archives are streamed both ways: the GET's body is read as it arrives, the PUT's body is
sent from an iterable of chunks or a file, never held whole.
"""

from __future__ import annotations

import contextlib
from collections import namedtuple
from collections.abc import Iterable, Iterator

from hyperapi.errors import HyperError
from hyperctl.errors import api_error
from hyperctl.httpconn import CHUNK, Connection, Response, quote
from hyperctl.transport import Transport, bool_param

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~5 ms a run
if TYPE_CHECKING:
    from typing import BinaryIO

STAT_HEADER = "X-Docker-Container-Path-Stat"
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27


class PathStat(namedtuple("PathStat", "name size mode mtime link_target")):
    """Docker's stat of a path in a container: ``name``, ``size``, ``mode`` (Go's
    os.FileMode), ``mtime`` (text), ``link_target``."""

    __slots__ = ()

    @property
    def is_dir(self) -> bool:
        return bool(self.mode & GO_MODE_DIR)

    @property
    def is_symlink(self) -> bool:
        return bool(self.mode & GO_MODE_SYMLINK)


def parse_stat(value: str | None) -> PathStat | None:
    """The ``X-Docker-Container-Path-Stat`` header (base64 JSON), or None without one."""
    if not value:
        return None
    import base64
    import binascii
    import json

    try:
        data = json.loads(base64.b64decode(value))
        return PathStat(
            str(data.get("name", "")),
            int(data.get("size") or 0),
            int(data.get("mode") or 0),
            str(data.get("mtime") or ""),
            str(data.get("linkTarget") or ""),
        )
    except (ValueError, TypeError, AttributeError, binascii.Error):
        raise HyperError(f"malformed {STAT_HEADER} header from hyperd") from None


class ArchiveReader:
    """The body of a GET archive answer as a binary file (``read``), or as ``chunks()``; a
    body cut short raises HyperError instead of looking like its end."""

    def __init__(self, conn: Connection, resp: Response):
        self._conn = conn
        self._resp = resp

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all the rest for -1); b"" at the end."""
        try:
            return self._resp.read(None if size < 0 else size)
        except OSError as e:
            raise HyperError(f"the archive from hyperd was cut short: {e}") from None

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives."""
        while data := self.read(CHUNK):
            yield data

    def close(self) -> None:
        """Drop the connection (the rest of the body is not read)."""
        with contextlib.suppress(OSError):
            self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _archive(container: str) -> str:
    return f"/containers/{quote(container)}/archive"


class ArchiveEndpoints(Transport):
    """``/containers/{id}/archive``."""

    def stat_path(self, container: str, path: str) -> PathStat:
        """``HEAD``: the stat of a path in the container (its VM is booted when stopped)."""
        conn, resp = self._send("HEAD", _archive(container), {"path": path}, timeout=None)
        try:
            stat = parse_stat(resp.getheader(STAT_HEADER))
        finally:
            conn.close()
        if stat is None:
            raise HyperError(f"hyperd sent no {STAT_HEADER} header")
        return stat

    def get_archive(self, container: str, path: str) -> tuple[ArchiveReader, PathStat | None]:
        """``GET``: a tar of the path (its entries under the path's base name) and its stat."""
        conn, resp = self._send("GET", _archive(container), {"path": path}, timeout=None)
        return ArchiveReader(conn, resp), parse_stat(resp.getheader(STAT_HEADER))

    def put_archive(
        self,
        container: str,
        path: str,
        data: Iterable[bytes] | BinaryIO,
        no_overwrite_dir_non_dir: bool = True,
        copy_uid_gid: bool = False,
    ) -> None:
        """``PUT``: extract a tar (chunks, or a binary file) under the directory ``path``."""
        params = {
            "path": path,
            "noOverwriteDirNonDir": bool_param(no_overwrite_dir_non_dir),
            "copyUIDGID": bool_param(copy_uid_gid),
        }
        url = self._url(_archive(container), params)
        what = f"PUT {_archive(container)}"
        conn = self._connection(None)
        try:
            try:
                headers = {"Content-Type": "application/x-tar"}
                conn.request("PUT", url, body=data, headers=headers)
            except OSError as e:
                # an error answer comes before the daemon has read the whole body: read it
                with contextlib.suppress(OSError):
                    resp = conn.getresponse()
                    if resp.status >= 400:
                        raise api_error(resp.status, resp.read(), resp.reason) from None
                raise self._io_error(e, what) from None
            self._read(conn, self._receive(conn, what))
        finally:
            conn.close()
