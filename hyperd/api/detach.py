"""Docker's detach keys: the key sequence that ends an attached session with a tty, leaving
the container (or exec) running.

``ctrl-p,ctrl-q`` by default; ``detachKeys`` (attach) or ``DetachKeys`` (exec create) choose
another: comma-separated ``ctrl-<key>`` or single characters, as moby's ``term.ToBytes``.
Input that begins the sequence is held back until it either completes it (detach) or stops
matching (then it is passed on), so none of it reaches the process or its terminal's echo.
"""

from __future__ import annotations

from hyperd.errors import InvalidArgument

DEFAULT = "ctrl-p,ctrl-q"
_CTRL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse(keys: str) -> bytes:
    """The bytes of a detach key sequence; a 400 naming it when malformed."""
    out = bytearray()
    for part in keys.split(","):
        key = part.strip().lower()
        if len(key) == 1:
            out.append(ord(part.strip()))
        elif key.startswith("ctrl-") and len(key) == 6:
            c = key[5]
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
            elif c in _CTRL:
                out.append(_CTRL[c])
            else:
                raise InvalidArgument(f"Invalid detach keys ({keys}) provided")
        else:
            raise InvalidArgument(f"Invalid detach keys ({keys}) provided")
    if not out:
        raise InvalidArgument(f"Invalid detach keys ({keys}) provided")
    return bytes(out)


class EscapeProxy:
    """Filters a stdin byte stream for the detach sequence."""

    def __init__(self, keys: bytes):
        self.keys = keys
        self._held = b""  # a prefix of keys seen at the end of the last chunk

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to pass to the process, whether the sequence was typed)."""
        out = bytearray()
        held = self._held
        for b in data:
            held += bytes((b,))
            if self.keys.startswith(held):
                if held == self.keys:
                    self._held = b""
                    return bytes(out), True
                continue
            # no longer a match: pass the held bytes on, but the last may start a new one
            out += held[:-1]
            held = held[-1:] if self.keys.startswith(held[-1:]) else b""
            if not held:
                out.append(b)
        self._held = held
        return bytes(out), False
