"""``json.loads``, ``json.dumps`` and ``json.JSONDecoder().raw_decode`` with their default
settings, for the plain ``hyper exec`` path: the C scanner and encoder (``_json``) that the
json module itself uses, without importing json (json.decoder compiles regular
expressions: ``re`` and json cost ~5 ms a run). The values are the json module's; anything
but a well-formed document is handed to the json module, which raises its own
``JSONDecodeError`` (a ValueError). Without ``_json`` (another Python), json does it all.
"""

from __future__ import annotations

try:
    from _json import encode_basestring_ascii, make_encoder, make_scanner
except ImportError:  # pragma: no cover
    make_scanner = None


class _DefaultDecoder:
    """What the C scanner reads of a default ``json.JSONDecoder`` (it keeps its own memo)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}
    parse_constant = parse_constant.__getitem__


_scan = make_scanner(_DefaultDecoder()) if make_scanner is not None else None


def _skip_whitespace(s: str, i: int) -> int:
    """The index of the first non-whitespace character from ``i`` (json's ``[ \\t\\n\\r]*``)."""
    n = len(s)
    while i < n and s[i] in " \t\n\r":
        i += 1
    return i


def _utf8(b: bytes | bytearray) -> bool:
    """True when json.detect_encoding reads ``b`` as UTF-8 for sure (no BOM, no NUL in its
    first two bytes); json decodes any other bytes itself."""
    return b[:1] not in (b"\xef", b"\xfe", b"\xff") and b"\0" not in b[:2]


def loads(s):
    """``json.loads(s)``."""
    if isinstance(s, bytes | bytearray) and _utf8(s):
        s = s.decode("utf-8", "surrogatepass")
    if _scan is not None and isinstance(s, str) and not s.startswith("\ufeff"):
        # On bad input the scanner raises StopIteration, or SystemError: it raises
        # JSONDecodeError only once json.decoder is imported. json.loads says what is wrong.
        try:
            obj, end = _scan(s, _skip_whitespace(s, 0))
        except Exception:
            pass
        else:
            if _skip_whitespace(s, end) == len(s):
                return obj
    import json

    return json.loads(s)


def raw_decode(s: str, idx: int = 0) -> tuple[object, int]:
    """``json.JSONDecoder().raw_decode(s, idx)``: the value at ``idx`` and where it ends."""
    if _scan is not None:
        try:
            return _scan(s, idx)
        except Exception:  # as in loads
            pass
    import json

    return json.JSONDecoder().raw_decode(s, idx)


def _default(o):
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def dumps(obj) -> str:
    """``json.dumps(obj)``."""
    if _scan is None:  # pragma: no cover
        import json

        return json.dumps(obj)
    if isinstance(obj, str):
        return encode_basestring_ascii(obj)
    # json.JSONEncoder.iterencode's C encoder for the defaults: circular check, ascii,
    # no indent, separators (", ", ": "), keys unsorted, no skipkeys, NaN allowed
    encode = make_encoder(
        {}, _default, encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    return "".join(encode(obj, 0))
