"""Signals by number or name, as Docker's API and CLI accept them."""

from __future__ import annotations

import contextlib
import signal as signals

from hyperd.errors import InvalidArgument


def parse_signal(value: str | int) -> int:
    """A signal by number or name (``KILL``, ``SIGKILL``, ``9``)."""
    text = str(value).strip().upper()
    if text.isdigit():
        num = int(text)
        if 0 < num < 65:
            return num
    else:
        name = text if text.startswith("SIG") else f"SIG{text}"
        with contextlib.suppress(AttributeError):
            return int(getattr(signals.Signals, name))
    raise InvalidArgument(f"invalid signal: {value}")
