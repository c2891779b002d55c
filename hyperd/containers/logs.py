"""Container logs on the host: JSON lines that outlive VMs and daemon restarts.

Each line is ``{"t": RFC3339Nano, "s": "stdout"|"stderr", "d": base64 data}``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from .state import now_rfc3339, parse_rfc3339


class LogWriter:
    """Appends output chunks to a container's log file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)

    def write(self, stream: str, data: bytes) -> None:
        """Record one chunk (one line of the file, one write(2))."""
        line = {"t": now_rfc3339(), "s": stream, "d": base64.b64encode(data).decode()}
        os.write(self._fd, (json.dumps(line, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


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
    """Yield (time, stream, data) from ``since`` to ``until``; with follow, keep going until
    the container stops (or ``until`` passes)."""
    path = Path(path)
    if not path.exists():
        return

    def wanted(r) -> bool:
        if not r:
            return False
        t = parse_rfc3339(r[0]) if since or until is not None else 0.0
        return (not since or t >= since) and (until is None or t <= until)

    if until is not None and until <= time.time():
        follow = False
    with open(path, "rb") as f:
        records = (r for r in map(_parse, f) if wanted(r))
        backlog = deque(records, maxlen=tail) if tail is not None else list(records)
        for rec in backlog:
            yield rec
        while follow:
            line = f.readline()
            if line.endswith(b"\n"):
                rec = _parse(line)
                if wanted(rec):
                    yield rec
                continue
            if line:
                f.seek(-len(line), os.SEEK_CUR)
            if not still_running():
                # one last read: output written just before the stop
                for line in f:
                    rec = _parse(line)
                    if wanted(rec):
                        yield rec
                return
            if until is not None and time.time() > until:
                return
            await asyncio.sleep(0.05)
