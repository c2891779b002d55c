"""The Dockerfile parser: lines (continuations, comments, parser directives) to instructions.

Each :class:`Instruction` keeps what the builder needs: the keyword, its ``--flags``, the
rest of the line, the exec (JSON) form when the arguments are a JSON array, and the text
as written (for ``Step 2/5 : RUN …``). Variable expansion happens later, per instruction,
with the values known at that step (see lexer.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from hyperd.errors import InvalidArgument

INSTRUCTIONS = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
)  # fmt: skip
# Flags each instruction takes (Docker's legacy builder set; BuildKit-only ones refused).
FLAGS = {
    "ADD": ("chown", "chmod"),
    "COPY": ("chown", "chmod", "from"),
    "FROM": ("platform",),
    "HEALTHCHECK": ("interval", "timeout", "start-period", "start-interval", "retries"),
}
JSON_FORMS = ("ADD", "CMD", "COPY", "ENTRYPOINT", "HEALTHCHECK", "RUN", "SHELL", "VOLUME")
_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


@dataclass
class Instruction:
    """One instruction, not yet expanded."""

    cmd: str  # upper case keyword
    args: str  # the arguments after the flags, continuations joined
    original: str  # the instruction as written (continuations joined), for the step lines
    line: int = 0
    flags: dict[str, str | bool] = field(default_factory=dict)
    json: list[str] | None = None  # the exec form, when args is a JSON array of strings

    def flag(self, name: str, default: str = "") -> str:
        """A string flag's value."""
        value = self.flags.get(name, default)
        return value if isinstance(value, str) else default


@dataclass
class Dockerfile:
    """A parsed Dockerfile."""

    instructions: list[Instruction]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    """Parser directives at the top (``# escape=`` …); returns them and the first other line."""
    out: dict[str, str] = {}
    for i, line in enumerate(lines):
        m = _DIRECTIVE_RE.match(line.strip())
        if not m or m.group(1).lower() in out:
            return out, i
        out[m.group(1).lower()] = m.group(2)
    return out, len(lines)


def parse(text: str | bytes) -> Dockerfile:
    """Parse a Dockerfile; InvalidArgument names the line of an error."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidArgument("the Dockerfile is not valid UTF-8") from None
    lines = text.splitlines()
    directives, start = _directives(lines)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise InvalidArgument(f"invalid escape token {escape!r} does not match ` or \\")
    out = []
    for lineno, joined in _logical_lines(lines[start:], escape, start + 1):
        out.append(parse_instruction(joined, lineno, escape))
    return Dockerfile(out, escape, directives)


def _logical_lines(lines: list[str], escape: str, first: int):
    """(line number, text) of each instruction, continuation lines joined."""
    parts: list[str] = []
    start = 0
    cont = re.compile(re.escape(escape) + r"[ \t]*$")
    for n, raw in enumerate(lines, first):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # blank and comment lines, also inside a continued instruction
        if not parts:
            start = n
        m = cont.search(raw)
        if m:
            parts.append(raw[: m.start()])
            continue
        parts.append(raw)
        yield start, "".join(parts).strip()
        parts = []
    if parts:
        yield start, "".join(parts).strip()


def parse_instruction(text: str, line: int = 0, escape: str = "\\") -> Instruction:
    """One instruction line (also a ``--change`` of commit or import)."""
    keyword, _, rest = text.strip().partition(" ")
    if "\t" in keyword:
        keyword, _, more = keyword.partition("\t")
        rest = more + " " + rest
    cmd = keyword.upper()
    if cmd not in INSTRUCTIONS:
        where = f"line {line}: " if line else ""
        raise InvalidArgument(f"dockerfile parse error {where}unknown instruction: {keyword}")
    rest = rest.strip()
    flags: dict[str, str | bool] = {}
    if cmd in FLAGS or cmd in ("RUN",):
        flags, rest = _flags(cmd, rest, line)
    inst = Instruction(cmd, rest, text.strip(), line, flags)
    if cmd in JSON_FORMS:
        inst.json = _json_form(rest)
    return inst


def _flags(cmd: str, rest: str, line: int) -> tuple[dict[str, str | bool], str]:
    flags: dict[str, str | bool] = {}
    while rest.startswith("--"):
        word, _, after = rest.partition(" ")
        if word == "--":
            rest = after.strip()
            break
        name, eq, value = word[2:].partition("=")
        if name not in FLAGS.get(cmd, ()):
            where = f" (line {line})" if line else ""
            raise InvalidArgument(f"Unknown flag: {name}{where}")
        flags[name] = value if eq else True
        rest = after.strip()
    return flags, rest


def _json_form(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None
