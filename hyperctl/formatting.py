"""Tables, times, sizes and Go-like ``--format`` templates, shaped like the docker CLI's
output; ``hyperctl/formats/`` builds each command's rows from them."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from hyperapi.errors import InvalidArgument

# --- times and sizes ----------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(round(seconds / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds // 3600) // 24 // 365} years"


def ago(timestamp: float | None, now: float | None = None) -> str:
    """``5 seconds ago`` / ``About a minute ago`` for a unix time."""
    if not timestamp:
        return ""
    now = time.time() if now is None else now
    return human_duration(max(0.0, now - timestamp)) + " ago"


def go_time(timestamp: float | None) -> str:
    """Go's ``time.Time.String()`` shape in local time: ``2024-01-02 15:04:05 +0100 CET``."""
    if not timestamp:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(timestamp))


def parse_timestamp(value: Any) -> float | None:
    """A unix number or an RFC 3339 string (nanoseconds tolerated) → unix seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text.startswith("0001-01-01"):
        return None
    m = re.match(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$", text)
    if not m:
        return None
    base, frac, tz = m.groups()
    tz = "+00:00" if tz in (None, "Z") else tz
    try:
        dt = datetime.fromisoformat(base.replace(" ", "T") + tz)
    except ValueError:
        return None
    return dt.timestamp() + (float(frac) if frac else 0.0)


def human_size(n: float, precision: int = 3) -> str:
    """Docker's units.HumanSizeWithPrecision: decimal units (``HumanSize`` is precision 4)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    n = float(n or 0)
    while abs(n) >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.{precision}g}{units[i]}"


def bytes_size(n: float) -> str:
    """Docker's units.BytesSize: binary units, 4 significant digits (``120.7MiB``)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    x, i = float(n or 0), 0
    while abs(x) >= 1024 and i < len(units) - 1:
        x /= 1024
        i += 1
    return f"{x:.4g}{units[i]}"


def ellipsis(text: str, width: int) -> str:
    """Docker's formatter.Ellipsis: cut to ``width`` display chars, ending with …"""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    return text[: width - 1] + "…"


def short_id(ident: str, trunc: bool = True) -> str:
    ident = ident or ""
    if ident.startswith("sha256:"):
        ident = ident[len("sha256:") :]
    return ident[:12] if trunc else ident


def format_labels(labels: Mapping[str, str] | None) -> str:
    """Labels as Docker lists them: ``a=1,b=2``, sorted by key."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def go_quote(text: str) -> str:
    """Go's strconv.Quote, near enough."""
    return json.dumps(text, ensure_ascii=False)


# --- tables -------------------------------------------------------------------------------

TABLE_MINWIDTH = 10  # the docker CLI's formatter: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)


def render_table(rows: Sequence[Sequence[str]], padding: int = 3, minwidth: int = 0) -> str:
    """Align columns like Go's tabwriter (padding 3 by default); last column unpadded."""
    if not rows:
        return ""
    ncols = max(len(r) for r in rows)
    widths = [0] * ncols
    for r in rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(cell))
    widths = [max(w + padding, minwidth) for w in widths]
    lines = []
    for r in rows:
        parts = [cell.ljust(widths[i]) for i, cell in enumerate(r[:-1])]
        parts.append(r[-1] if r else "")
        lines.append("".join(parts).rstrip())
    return "\n".join(lines)


# --- Go-like templates --------------------------------------------------------------------

_ACTION_RE = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)


class _Missing:
    def __str__(self) -> str:
        return "<no value>"


MISSING = _Missing()


def _lookup(obj: Any, path: str, strict: bool) -> Any:
    if path == ".":
        return obj
    cur = obj
    for part in path.lstrip(".").split("."):
        if isinstance(cur, Mapping):
            if part in cur:
                cur = cur[part]
            elif strict:
                raise InvalidArgument(f'template: can\'t evaluate field {part} in "{path}"')
            else:
                return MISSING
        else:
            if strict:
                raise InvalidArgument(f'template: can\'t evaluate field {part} in "{path}"')
            return MISSING
    return cur


def _to_text(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Mapping):
        inner = " ".join(f"{k}:{_to_text(v)}" for k, v in sorted(value.items()))
        return f"map[{inner}]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_to_text(v) for v in value) + "]"
    return str(value)


def _json(value: Any) -> str:
    if value is MISSING:
        return "null"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_FUNCS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "upper": lambda v: _to_text(v).upper(),
    "lower": lambda v: _to_text(v).lower(),
    "title": lambda v: _to_text(v).title(),
    "join": lambda v, sep: sep.join(_to_text(x) for x in v),
    "truncate": lambda v, n: _to_text(v)[: int(n)],
    "println": lambda *v: " ".join(_to_text(x) for x in v) + "\n",
    "len": lambda v: len(v),
}

_ARG_RE = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')


class Template:
    """A small subset of Go's text/template: ``{{.A.B}}``, ``{{json .}}``, ``{{upper .X}}``,
    ``{{join .L ","}}``, ``{{truncate .X 5}}`` plus Docker's ``\\t``/``\\n`` escapes."""

    def __init__(self, text: str, strict: bool = False):
        self.text = text.replace("\\t", "\t").replace("\\n", "\n")
        self.strict = strict
        self.parts: list[tuple[str, Any]] = []
        pos = 0
        for m in _ACTION_RE.finditer(self.text):
            if m.start() > pos:
                self.parts.append(("text", self.text[pos : m.start()]))
            self.parts.append(("action", self._parse(m.group(1))))
            pos = m.end()
        if pos < len(self.text):
            self.parts.append(("text", self.text[pos:]))

    def _parse(self, expr: str) -> tuple[str | None, list[tuple[str, str]]]:
        args = []
        for m in _ARG_RE.finditer(expr):
            if m.group(1) is not None:
                args.append(("str", json.loads(f'"{m.group(1)}"')))
            else:
                tok = m.group(2)
                if tok.startswith("."):
                    args.append(("field", tok))
                elif re.fullmatch(r"-?\d+", tok):
                    args.append(("num", tok))
                else:
                    args.append(("name", tok))
        if not args:
            raise InvalidArgument("template: empty action")
        func = None
        if args[0][0] == "name":
            func = args.pop(0)[1]
            if func not in _FUNCS:
                raise InvalidArgument(f'template: function "{func}" not defined')
        if func is None and len(args) != 1:
            raise InvalidArgument(f"template: cannot evaluate {expr!r}")
        for kind, val in args:
            if kind == "name":
                raise InvalidArgument(f"template: unsupported {val!r} in {expr!r}")
        return func, args

    def fields(self) -> list[str]:
        """The top-level field names used (for table headers)."""
        out = []
        for kind, val in self.parts:
            if kind == "action":
                for akind, a in val[1]:
                    if akind == "field" and a != ".":
                        out.append(a.lstrip(".").split(".")[0])
        return out

    def render(self, obj: Any) -> str:
        out = []
        for kind, val in self.parts:
            if kind == "text":
                out.append(val)
                continue
            func, args = val
            values = []
            for akind, a in args:
                if akind == "field":
                    values.append(_lookup(obj, a, self.strict))
                elif akind == "num":
                    values.append(int(a))
                else:
                    values.append(a)
            if func is None:
                out.append(_to_text(values[0]))
            else:
                try:
                    out.append(_to_text(_FUNCS[func](*values)))
                except TypeError as e:
                    raise InvalidArgument(f"template: {func}: {e}") from None
        return "".join(out)


def render_template_table(
    fmt: str, items: Sequence[Mapping[str, Any]], headers: Mapping[str, str]
) -> str:
    """``table {{.A}}\\t{{.B}}``: a header row, then one row per item, tab-aligned.
    Without the ``table`` prefix, one rendered line per item."""
    is_table = fmt.startswith("table")
    body = fmt[len("table") :].strip() if is_table else fmt
    tpl = Template(body, strict=True)
    if not is_table:
        return "\n".join(tpl.render(i) for i in items)
    header_ctx = {k: v for k, v in headers.items()}
    for name in tpl.fields():
        header_ctx.setdefault(name, name.upper())
    rows = [tpl.render(header_ctx).split("\t")]
    rows += [tpl.render(i).split("\t") for i in items]
    return render_table(rows, minwidth=TABLE_MINWIDTH)


def format_listing(
    rows: Sequence[Mapping[str, Any]],
    fmt: str | None,
    headers: Mapping[str, str],
    default_table: str,
) -> str:
    """A listing's ``--format``: ``table`` (the default columns), ``table TEMPLATE``,
    ``json`` (one object a line) or a bare template (one line a row)."""
    if not fmt or fmt == "table":
        fmt = default_table
    if fmt == "json":
        return "\n".join(json.dumps(r, ensure_ascii=False, sort_keys=True) for r in rows)
    return render_template_table(fmt, rows, headers)
