"""The generic output helpers: Go-like templates, tables, human times and sizes."""

from __future__ import annotations

import pytest

from hyperctl import formatting as f

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    "secs,text",
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (5, "5 seconds"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (3599, "59 minutes"),
        (3600, "About an hour"),
        (2 * 3600, "2 hours"),
        (47 * 3600, "47 hours"),
        (3 * 86400, "3 days"),
        (15 * 86400, "2 weeks"),
        (90 * 86400, "3 months"),
        (3 * 365 * 86400, "3 years"),
    ],
)
def test_human_duration(secs, text):
    assert f.human_duration(secs) == text


def test_ago_and_sizes():
    assert f.ago(NOW - 5, NOW) == "5 seconds ago"
    assert f.ago(NOW - 90, NOW) == "About a minute ago"
    assert f.human_size(2_130_000) == "2.13MB"
    assert f.human_size(999) == "999B"
    assert f.human_size(77_900_000) == "77.9MB"


def test_parse_timestamp():
    assert f.parse_timestamp(12) == 12.0
    assert f.parse_timestamp("2023-11-14T22:13:20Z") == 1_700_000_000.0
    assert f.parse_timestamp("2023-11-14T22:13:20.5+00:00") == 1_700_000_000.5
    assert f.parse_timestamp("2023-11-14T22:13:20.123456789Z") == pytest.approx(
        1_700_000_000.123456789
    )
    assert f.parse_timestamp("0001-01-01T00:00:00Z") is None


def test_ellipsis_and_quote():
    assert f.ellipsis("sh -c 'sleep 100'", 20) == "sh -c 'sleep 100'"
    assert f.ellipsis("sh -c 'echo out; echo err'", 20) == "sh -c 'echo out; ec…"
    assert len(f.ellipsis("x" * 50, 20)) == 20
    assert f.go_quote('a "b"') == '"a \\"b\\""'


def test_template_nested_and_missing():
    obj = {"State": {"Status": "exited", "ExitCode": 3, "Running": False}, "Config": {"Env": []}}
    assert f.Template("{{.State.Status}} {{.State.ExitCode}}").render(obj) == "exited 3"
    assert f.Template("{{.State.Running}}").render(obj) == "false"
    assert f.Template("{{json .Config}}").render(obj) == '{"Env":[]}'
    assert f.Template("{{.Nope}}").render(obj) == "<no value>"
    assert f.Template('{{join .L ","}}').render({"L": ["a", "b"]}) == "a,b"


def test_render_table():
    assert f.render_table([["A", "BB", "C"], ["aaaa", "b", "c"]]) == "A      BB   C\naaaa   b    c"


def test_render_table_minwidth_and_listing():
    rows = [["A", "B", "C"], ["aaaa", "b", "c"]]
    assert f.render_table(rows, minwidth=10) == "A         B         C\naaaa      b         c"
    items = [{"X": "1", "Y": "two"}]
    assert f.format_listing(items, None, {"X": "EX"}, "table {{.X}}\t{{.Y}}") == (
        "EX        Y\n1         two"
    )
    assert f.format_listing(items, "json", {}, "") == '{"X": "1", "Y": "two"}'
    assert f.format_listing(items, "{{.Y}}-{{.X}}", {}, "") == "two-1"


def test_bytes_and_human_sizes():
    assert f.bytes_size(256 << 20) == "256MiB"
    assert f.bytes_size(126_771_200) == "120.9MiB"
    assert f.bytes_size(0) == "0B"
    assert f.human_size(2_327_000, 4) == "2.327MB"
    assert f.human_size(2_327_000) == "2.33MB"
