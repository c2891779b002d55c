"""Container logs on the host: JSON lines that outlive VMs and daemon restarts, rotated.

Each line is ``{"t": RFC3339Nano, "s": "stdout"|"stderr", "d": base64 data}``. With a
``max-size``, the file is rotated as Docker's json-file driver does: ``container.log`` is
renamed ``container.log.1`` (older ones shift up to ``.N``, ``N = max-file - 1``) and a new
one is started. Readers go through the rotated files oldest first and follow renames by
inode, so a ``logs -f`` across a rotation neither loses nor repeats a line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from hyperapi.units import parse_size
from hyperd.errors import InvalidArgument

from .state import now_rfc3339, parse_rfc3339

YIELD_EVERY = 512  # lines read between two turns of the event loop


@dataclass(frozen=True)
class LogLimits:
    """Rotation of one container's log: max_size 0 means never rotate."""

    max_size: int = 0
    max_file: int = 1


# json-file options: those with an effect, and those accepted as Docker does with none here.
LOG_OPTS = {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"}


def log_limits(opts: dict[str, str]) -> LogLimits:
    """Docker's json-file options as rotation limits; a 400 for unknown or bad ones."""
    for key in opts:
        if key not in LOG_OPTS:
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
    if opts.get("compress", "false") not in ("false", "0"):
        raise InvalidArgument("log opt compress is not supported (rotated logs stay plain)")
    size = parse_size(opts.get("max-size") or 0) if opts.get("max-size", "-1") != "-1" else 0
    count = opts.get("max-file") or "1"
    if not count.isdigit() or int(count) < 1:
        raise InvalidArgument(f"invalid value for max-file: {count!r} (a whole number >= 1)")
    return LogLimits(size, int(count))


class LogWriter:
    """Appends output chunks to a container's log file, rotating it at its size limit."""

    def __init__(self, path: str | Path, limits: LogLimits = LogLimits()):
        self.path = Path(path)
        self.limits = limits
        self._pending = b""  # records not on disk yet (the disk was full)
        self._open()

    def _open(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(self.path, flags, 0o640)
        self._size = os.fstat(self._fd).st_size

    def write(self, stream: str, data: bytes) -> None:
        """Record a chunk of output, one log line per line of output (as Docker counts
        lines for ``--tail``); a line not finished yet is a record of its own."""
        stamp = now_rfc3339()
        lines = [p + b"\n" for p in data.split(b"\n")]
        lines[-1] = lines[-1][:-1]  # what follows the last newline, if anything
        if not lines[-1]:
            lines.pop()
        records = [
            (json.dumps({"t": stamp, "s": stream, "d": base64.b64encode(piece).decode()},
                        separators=(",", ":")) + "\n").encode()
            for piece in lines
        ]  # fmt: skip
        limit, size, start = self.limits.max_size, self._size, 0
        for i, rec in enumerate(records):
            # as Docker's json-file: a file passes max-size by no more than one record
            if limit and size and size + len(rec) > limit and not self._pending:
                self._write(records[start:i], records[i:])
                self._rotate()
                size, start = 0, i
            size += len(rec)
        self._write(records[start:], [])

    def _write(self, records: list[bytes], rest: list[bytes]) -> None:
        self._pending += b"".join(records)
        try:
            self.flush()
        except OSError:
            self._pending += b"".join(rest)  # kept whole, for the next flush
            raise

    def flush(self) -> None:
        """Write what is pending; an OSError (a full disk) leaves the rest pending, whole,
        for the next call, so nothing is lost or written twice."""
        while self._pending:
            n = os.write(self._fd, self._pending)
            self._size += n
            self._pending = self._pending[n:]

    def _rotate(self) -> None:
        os.close(self._fd)
        keep = self.limits.max_file - 1
        if keep < 1:
            self.path.unlink(missing_ok=True)
        else:
            for i in range(keep, 1, -1):
                older = rotated(self.path, i - 1)
                if older.exists():
                    older.replace(rotated(self.path, i))
            self.path.replace(rotated(self.path, 1))
        self._open()

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


def rotated(path: Path, n: int) -> Path:
    """The n-th rotated file of a log (1 is the most recent)."""
    return path.with_name(f"{path.name}.{n}")


def log_files(path: Path) -> list[Path]:
    """A log's files, oldest first, the current one last."""
    old = []
    n = 1
    while rotated(path, n).exists():
        old.append(rotated(path, n))
        n += 1
    return [*reversed(old), *([path] if path.exists() else [])]


def _files_after(path: Path, ino: int) -> list[Path] | None:
    """The files newer than the one with inode ``ino``; None if that one is current."""
    with contextlib.suppress(FileNotFoundError):
        if os.stat(path).st_ino == ino:
            return None
    files = log_files(path)
    for i, p in enumerate(files):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(p).st_ino == ino:
                return files[i + 1 :]
    return files  # ours was rotated away entirely: go on from the oldest left


def _parse(line: bytes) -> tuple[str, str, bytes] | None:
    try:
        rec = json.loads(line)
        return rec["t"], rec["s"], base64.b64decode(rec["d"])
    except (ValueError, KeyError, TypeError):
        return None  # a line cut short by a crash is skipped, not fatal


async def read_logs(
    path: str | Path,
    *,
    tail: int | None = None,
    since: float = 0.0,
    until: float | None = None,
    follow: bool = False,
    still_running: Callable[[], bool] = lambda: False,
) -> AsyncIterator[tuple[str, str, bytes]]:
    """Yield (time, stream, data) from ``since`` to ``until`` across rotated files; the last
    ``tail`` records only, when given; with follow, go on until the container stops (or
    ``until`` passes)."""
    path = Path(path)
    files = log_files(path)
    if not files:
        return

    def wanted(r) -> bool:
        if not r:
            return False
        if not since and until is None:
            return True
        t = parse_rfc3339(r[0])
        return (not since or t >= since) and (until is None or t <= until)

    if until is not None and until <= time.time():
        follow = False
    backlog = deque(maxlen=tail) if tail is not None else None
    f = open(files[0], "rb")  # noqa: SIM115 - handed from file to file below
    read, last_pass = 0, False
    try:
        while True:
            line = f.readline()
            if line.endswith(b"\n"):
                rec = _parse(line)
                if backlog is not None:
                    if rec:  # as Docker: the last ``tail`` lines, then since/until
                        backlog.append(rec)
                elif wanted(rec):
                    yield rec
                read += 1
                if read % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                continue
            if line:  # a line being written: read it whole later
                f.seek(-len(line), os.SEEK_CUR)
            newer = _files_after(path, os.fstat(f.fileno()).st_ino)
            if newer:
                f.close()
                f = open(newer[0], "rb")  # noqa: SIM115
                continue
            if backlog is not None:  # caught up: the tail, then what comes
                for rec in backlog:
                    if wanted(rec):
                        yield rec
                backlog = None
            if not follow or last_pass or (until is not None and time.time() > until):
                return
            if not still_running():
                last_pass = True  # one more read: output written just before the stop
                continue
            await asyncio.sleep(0.05)
    finally:
        f.close()
