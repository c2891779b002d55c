"""Docker-style sizes (go-units), shared by the daemon's config and the CLI's flags."""

from __future__ import annotations

import re

from hyperapi.errors import InvalidArgument

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$")


def parse_size(text: str | int) -> int:
    """Docker's RAMInBytes: ``256m``, ``1g``, ``1.5GiB``, ``1048576`` (binary units)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = _SIZE_RE.match(str(text).strip())
    if not m:
        raise InvalidArgument(f"invalid size: '{text}'")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])
