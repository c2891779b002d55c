"""Dockerfile words: quotes, escapes and ``$VAR`` expansion, as Docker's shell lexer does them.

``expand`` processes one word (quotes removed, variables replaced); ``split`` cuts a line
into words first (whitespace outside quotes), so ``EXPOSE $PORTS`` or
``LABEL "a b"=c`` read as Docker reads them. Supported forms: ``$NAME``, ``${NAME}``,
``${NAME:-word}``, ``${NAME-word}``, ``${NAME:+word}``, ``${NAME+word}``,
``${NAME:?message}``; ``\\$`` and single quotes keep a ``$`` literal.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from hyperd.errors import InvalidArgument

_NAME_START = string.ascii_letters + "_"
_NAME_CHARS = _NAME_START + string.digits


class _Reader:
    def __init__(self, text: str, env: Mapping[str, str] | None, escape: str):
        self.text, self.env, self.escape = text, env, escape
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    # -- a word ------------------------------------------------------------------------

    def word(self, stop_at_space: bool, keep_quotes: bool = False) -> str:
        out = []
        while self.pos < len(self.text):
            ch = self.peek()
            if stop_at_space and ch.isspace():
                break
            self.take()
            if ch == self.escape:
                nxt = self.take()
                out.append((ch + nxt) if keep_quotes else nxt)
            elif ch == "'":
                out.append(self._single(keep_quotes))
            elif ch == '"':
                out.append(self._double(keep_quotes))
            elif ch == "$" and self.env is not None:
                out.append(self._variable())
            else:
                out.append(ch)
        return "".join(out)

    def _single(self, keep: bool) -> str:
        end = self.text.find("'", self.pos)
        if end < 0:
            raise InvalidArgument(
                f"unexpected end of statement while looking for matching ': {self.text}"
            )
        inner = self.text[self.pos : end]
        self.pos = end + 1
        return f"'{inner}'" if keep else inner

    def _double(self, keep: bool) -> str:
        out = []
        while True:
            if self.pos >= len(self.text):
                raise InvalidArgument(
                    f'unexpected end of statement while looking for matching ": {self.text}'
                )
            ch = self.take()
            if ch == '"':
                break
            if ch == self.escape and self.peek() in ('"', self.escape, "$"):
                nxt = self.take()
                out.append((ch + nxt) if keep else nxt)
            elif ch == "$" and self.env is not None:
                out.append(self._variable())
            else:
                out.append(ch)
        inner = "".join(out)
        return f'"{inner}"' if keep else inner

    # -- $VAR ----------------------------------------------------------------------------

    def _name(self) -> str:
        start = self.pos
        if self.peek() and self.peek() in _NAME_START:
            while self.peek() and self.peek() in _NAME_CHARS:
                self.pos += 1
        return self.text[start : self.pos]

    def _variable(self) -> str:
        if self.peek() == "{":
            self.take()
            return self._braced()
        name = self._name()
        if not name:
            return "$"
        return self.env.get(name, "")

    def _braced(self) -> str:
        name = self._name()
        if not name:
            raise InvalidArgument(f"bad substitution: missing variable name in {self.text!r}")
        op = self.take()
        if op == "}":
            return self.env.get(name, "")
        if op == ":":
            op += self.take()
        if op not in (":-", ":+", "-", "+", ":?", "?"):
            raise InvalidArgument(f"unsupported modifier ({op}) in substitution: {self.text!r}")
        word = self._until_brace()
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not op.startswith(":"))
        if op.endswith("-"):
            return value if is_set else word
        if op.endswith("+"):
            return word if is_set else ""
        if not is_set:
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
        return value

    def _until_brace(self) -> str:
        out = []
        while True:
            if self.pos >= len(self.text):
                raise InvalidArgument(f"missing '}}' in substitution: {self.text!r}")
            ch = self.take()
            if ch == "}":
                return "".join(out)
            if ch == self.escape:
                out.append(self.take())
            elif ch == "$":
                out.append(self._variable())
            elif ch == "'":
                out.append(self._single(False))
            elif ch == '"':
                out.append(self._double(False))
            else:
                out.append(ch)


def expand(word: str, env: Mapping[str, str] | None, escape: str = "\\") -> str:
    """One word with its quotes removed and (``env`` given) its variables replaced."""
    return _Reader(word, env, escape).word(stop_at_space=False)


def split(text: str, env: Mapping[str, str] | None = None, escape: str = "\\") -> list[str]:
    """Words of ``text`` (whitespace outside quotes separates them), each expanded."""
    return _words(_Reader(text, env, escape), keep_quotes=False)


def split_raw(text: str, escape: str = "\\") -> list[str]:
    """Words of ``text`` with quotes and escapes kept (for ``KEY=VALUE`` pairs)."""
    return _words(_Reader(text, None, escape), keep_quotes=True)


def _words(r: _Reader, keep_quotes: bool) -> list[str]:
    words = []
    while True:
        while r.peek().isspace():
            r.take()
        if not r.peek():
            return words
        words.append(r.word(stop_at_space=True, keep_quotes=keep_quotes))
