"""hyperctl.fastjson: json.loads, json.dumps and JSONDecoder().raw_decode without importing
json, with exactly the json module's results and errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperctl import fastjson
from tests.conftest import ROOT

VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**64,
    -(10**40),
    1.5,
    -0.0,
    1e300,
    5e-324,
    0.1,
    "",
    "plain",
    "é ü 雪 \U0001f600",
    'quote " backslash \\ slash / controls \n\r\t\b\f \x00 \x1f \x7f',
    "\ud800 lone surrogate",
    [],
    {},
    [[]],
    {"": {}},
    [1, "a", None, [True, {"k": [2.5, {}]}]],
    {"Id": "e1", "Running": False, "ExitCode": 0, "ProcessConfig": {"arguments": ["-c", "x"]}},
    {"nested": {"deeper": {"deepest": [[[[]]]]}}},
]

TEXTS = [
    "1",
    " 1 ",
    "\t\n\r [1 , 2] \n",
    '{"a": 1, "a": 2}',
    '"\\u00e9\\ud83d\\ude00\\n"',
    "NaN",
    "[Infinity, -Infinity, NaN]",
    "123456789012345678901234567890",
    "1E400",
    "-1e-400",
    "0.1e1",
    '{"x":[1,{"y":"z"}],"w":null}',
]

BAD = [
    "",
    " ",
    "[1,]",
    "[1 2]",
    '{"a" 1}',
    '{"a": 1,}',
    "{'a': 1}",
    "[1] x",
    "1 2",
    '"unterminated',
    '"bad \\x escape"',
    '"control \x01 char"',
    "nan",
    "01",
    "\ufeff1",
    "\u00a01",  # no-break space: not JSON whitespace
    "[" * 100 + "]" * 99,
]


def same(a, b) -> bool:
    """Equal as JSON values (NaN equal to NaN, floats and ints told apart)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and repr(a) == repr(b))
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        if type(a) is not type(b) or len(a) != len(b):
            return False
        if isinstance(a, dict):
            return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
        return all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def error(f, *args):
    """The exception ``f(*args)`` raises, as (type, message, position if any)."""
    try:
        f(*args)
    except Exception as e:
        return type(e), str(e), getattr(e, "pos", None)
    raise AssertionError(f"{f.__qualname__}{args!r} raised nothing")


def loads_as_json(doc) -> None:
    """fastjson.loads(doc) gives json.loads's value, or fails with json's own error."""
    try:
        expected = json.loads(doc)
    except ValueError:
        assert error(fastjson.loads, doc) == error(json.loads, doc)
    else:
        assert same(fastjson.loads(doc), expected)


@pytest.mark.parametrize("value", VALUES + [float("nan"), float("inf"), float("-inf")])
def test_dumps_and_loads_match_json(value):
    assert fastjson.dumps(value) == json.dumps(value)
    text = json.dumps(value)
    assert same(fastjson.loads(text), json.loads(text))
    assert same(fastjson.loads(text.encode()), json.loads(text.encode()))


@pytest.mark.parametrize("text", TEXTS)
def test_loads_matches_json(text):
    assert same(fastjson.loads(text), json.loads(text))
    assert same(fastjson.loads(text.encode()), json.loads(text.encode()))
    assert same(fastjson.loads(bytearray(text.encode())), json.loads(bytearray(text.encode())))


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf[1]",
        "[1]".encode("utf-16"),
        "[1]".encode("utf-32"),
        b"\x001",
        b"1\x00",
        b"\x00",
    ],
)
def test_bytes_in_other_encodings_read_as_with_json(data):
    loads_as_json(data)


@pytest.mark.parametrize("text", BAD)
def test_bad_documents_raise_json_errors(text):
    err = error(fastjson.loads, text)
    assert issubclass(err[0], ValueError)
    assert err == error(json.loads, text)
    if text and not text.startswith("\ufeff"):
        assert error(fastjson.loads, text.encode()) == error(json.loads, text.encode())


def test_bad_bytes_and_types_raise_as_json_does():
    for data in (b"\xff\xfe\xfd", b'"\xc3"', b"\x80"):
        assert error(fastjson.loads, data) == error(json.loads, data)
    for value in (None, 1, ["[]"]):
        assert error(fastjson.loads, value) == error(json.loads, value)


def test_deep_nesting_raises_as_json_does():
    text = "[" * 100_000 + "]" * 100_000
    assert error(fastjson.loads, text) == error(json.loads, text)
    assert error(fastjson.loads, text)[0] is RecursionError


@pytest.mark.parametrize(
    "text, idx",
    [("[1] [2]", 0), ("[1] [2]", 4), ('{"a": 1}\n{"b"', 0), ("12 ", 0), ("x1", 1)],
)
def test_raw_decode_matches_json(text, idx):
    expected = json.JSONDecoder().raw_decode(text, idx)
    assert fastjson.raw_decode(text, idx) == expected


@pytest.mark.parametrize("text, idx", [("[1] [2]", 3), ('{"b"', 0), ("", 0), ("[1", 0), ("1", 5)])
def test_raw_decode_errors_match_json(text, idx):
    err = error(fastjson.raw_decode, text, idx)
    assert issubclass(err[0], ValueError)
    assert err == error(json.JSONDecoder().raw_decode, text, idx)


def test_dumps_errors_match_json():
    loop: list = []
    loop.append(loop)
    for value in (object(), {1j: 1}, {"a": {1, 2}}, loop, b"bytes"):
        assert error(fastjson.dumps, value) == error(json.dumps, value)
    # a failed encoding leaves nothing behind for the next one
    assert fastjson.dumps({"a": [1]}) == json.dumps({"a": [1]})


def test_dumps_keys_as_json():
    value = {7: "int", 2.5: "float", True: "bool", False: "bool", None: "none", "s": "str"}
    assert fastjson.dumps(value) == json.dumps(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(json_values)
def test_any_value_round_trips_as_with_json(value):
    text = json.dumps(value)
    assert fastjson.dumps(value) == text
    assert same(fastjson.loads(text), json.loads(text))
    spaced = " \n" + json.dumps(value, indent=2) + "\t\r\n"
    assert same(fastjson.loads(spaced.encode()), json.loads(spaced.encode()))


@given(st.text(alphabet=' \t\n\r\x0b[]{}",:0123456789.eE+-truefalsnNIiy\\u'))
def test_any_text_decodes_or_fails_as_with_json(text):
    loads_as_json(text)


def test_a_fresh_interpreter_imports_no_json_and_gets_json_errors():
    """Run where json is not imported yet (as in ``hyper exec``): the C scanner reports
    errors through json.decoder, which it does not import itself."""
    bad = ['{"a" 1}', "[1] x", "", '"abc', "[1,", "\ufeff[]"]
    probe = textwrap.dedent(
        r"""
        import sys
        from hyperctl import fastjson

        assert fastjson.loads(b' {"a": [2.5, null, "\u00e9"]}\n') == {"a": [2.5, None, "\xe9"]}
        assert fastjson.dumps({"a": ["\xe9", 1e400]}) == '{"a": ["\\u00e9", Infinity]}'
        assert fastjson.raw_decode("[1] [2]", 4) == ([2], 7)
        print(sorted({"json", "json.decoder", "re"} & set(sys.modules)))
        for text in sys.argv[1:]:
            for f in (fastjson.loads, fastjson.raw_decode):
                try:
                    f(text)
                except ValueError as e:
                    print(type(e).__name__, e)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", probe, *bad]
    res = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "[]"
    expected = []
    for text in bad:
        for f in (json.loads, json.JSONDecoder().raw_decode):
            try:
                f(text)
            except ValueError as e:
                expected.append(f"{type(e).__name__} {e}")
    assert lines[1:] == expected
