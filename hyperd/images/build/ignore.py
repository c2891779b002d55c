""".dockerignore: which files of a build context are left out, as Docker decides it.

Lines are trimmed; ``#`` starts a comment; ``!`` makes an exception. Patterns are Go's
``filepath.Match`` (``*`` and ``?`` never cross a ``/``, ``[a-z]`` classes, ``\\`` escapes)
plus ``**``, which matches any number of directories. A path is excluded when the last
pattern matching it, or one of its parent directories, is not an exception.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

_SPECIAL = set(".+()|{}$^")


@dataclass(frozen=True)
class Pattern:
    """One compiled .dockerignore line."""

    text: str
    exclusion: bool  # a "!" line: what it matches is kept
    regex: re.Pattern

    def match(self, path: str) -> bool:
        return bool(self.regex.match(path))


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file, cleaned as Docker cleans them."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        line = posixpath.normpath(line) if line else line
        if len(line) > 1 and line.startswith("/"):
            line = line.lstrip("/") or "/"
        out.append(("!" if invert else "") + line)
    return out


def _regex(pattern: str) -> re.Pattern:
    out, i = ["^"], 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < len(pattern) and pattern[i] == "*":
                i += 1
                if i < len(pattern) and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= len(pattern) else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i < len(pattern):
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch in _SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    out.append("$")
    try:
        return re.compile("".join(out))
    except re.error:
        return re.compile(re.escape(pattern) + "$")


def compile_patterns(patterns: list[str]) -> list[Pattern]:
    """Compile cleaned patterns (``!`` lines are exceptions)."""
    out = []
    for p in patterns:
        exclusion = p.startswith("!")
        body = p[1:] if exclusion else p
        out.append(Pattern(body, exclusion, _regex(body)))
    return out


class Matcher:
    """Decides, for paths relative to the context root, whether they are excluded."""

    def __init__(self, patterns: list[str]):
        self.patterns = compile_patterns(patterns)

    def excluded(self, path: str) -> bool:
        """Docker's MatchesOrParentMatches: the last matching pattern decides."""
        path = path.strip("/")
        parts = path.split("/")
        parents = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue
            if p.match(path) or any(p.match(parent) for parent in parents):
                matched = not p.exclusion
        return matched

    @property
    def empty(self) -> bool:
        return not self.patterns
