"""Docker's image filter values: until's three forms, dangling's booleans, path globs."""

from __future__ import annotations

import time

import pytest

from hyperd.errors import InvalidArgument
from hyperd.images.filters import _path_match, dangling, until


def test_until_takes_unix_seconds_rfc3339_or_a_duration():
    assert until("1700000000.5") == 1700000000.5
    assert until("2023-11-14T22:13:20Z") == 1700000000
    assert abs(until("1h30m") - (time.time() - 5400)) < 5
    with pytest.raises(InvalidArgument, match="until"):
        until("yesterday")


def test_dangling_is_one_boolean():
    assert dangling(["true"]) is True and dangling(["0"]) is False
    for bad in (["maybe"], ["true", "false"]):
        with pytest.raises(InvalidArgument, match="dangling"):
            dangling(bad)


def test_globs_stay_within_a_path_component():
    assert _path_match("filt/*", "filt/a:1") and _path_match("alp*", "alpine:3.10")
    assert not _path_match("*", "library/x") and not _path_match("filt/*", "filt/a/b")
