"""Detach keys: Docker's key syntax, and the escape proxy that holds a partial sequence back."""

from __future__ import annotations

import pytest

from hyperd.api.detach import DEFAULT, EscapeProxy, parse
from hyperd.errors import InvalidArgument


def test_parse_follows_docker_syntax():
    assert parse(DEFAULT) == b"\x10\x11"
    assert parse("ctrl-x") == b"\x18"
    assert parse("ctrl-@,ctrl-[,a") == b"\x00\x1ba"
    assert parse("ctrl-P,ctrl-Q") == b"\x10\x11"


@pytest.mark.parametrize("keys", ["ctrl-", "ctrl-1", "ctrl-ab", "ab", ",", ""])
def test_parse_refuses_malformed_keys(keys):
    with pytest.raises(InvalidArgument, match="Invalid detach keys"):
        parse(keys)


def test_whole_sequence_detaches_and_is_not_passed_on():
    proxy = EscapeProxy(b"\x10\x11")
    assert proxy.feed(b"abc\x10\x11ignored") == (b"abc", True)


def test_sequence_split_across_reads_is_held_then_detaches():
    proxy = EscapeProxy(b"\x10\x11")
    assert proxy.feed(b"x\x10") == (b"x", False)
    assert proxy.feed(b"\x11") == (b"", True)


def test_broken_sequence_is_passed_on_in_order():
    proxy = EscapeProxy(b"\x10\x11")
    assert proxy.feed(b"\x10") == (b"", False)
    assert proxy.feed(b"q") == (b"\x10q", False)
    assert proxy.feed(b"\x10\x10\x11") == (b"\x10", True)


def test_one_key_sequence():
    assert EscapeProxy(b"\x10").feed(b"ab\x10cd") == (b"ab", True)
