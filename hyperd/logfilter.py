"""Rate limit for repeated log records: under descriptor exhaustion asyncio reports every
failed accept(), which once wrote 139 MB of log in seconds."""

from __future__ import annotations

import logging
import time

WINDOW = 10.0


class RepeatFilter(logging.Filter):
    """Let the first of identical warnings/errors through per window; count the rest and
    say how many were dropped with the next one let through."""

    def __init__(self, window: float = WINDOW):
        super().__init__()
        self.window = window
        self._seen: dict[tuple, list] = {}  # key -> [window start, suppressed count]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, record.getMessage()[:200])
        now = time.monotonic()
        entry = self._seen.get(key)
        if entry is None or now - entry[0] >= self.window:
            if entry is not None and entry[1]:
                record.msg = f"{record.msg} ({entry[1]} similar messages suppressed)"
            self._seen[key] = [now, 0]
            if len(self._seen) > 1000:  # forget old kinds
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
            return True
        entry[1] += 1
        return False
