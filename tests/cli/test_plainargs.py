"""The click-free parse of plain ``hyper exec`` command lines (hyperctl.plainargs): every
command line it takes must give exactly click's values; any other is left to click."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hyperctl.commands.exec as exec_command
from hyperctl.execplain import parse_exec
from hyperctl.group import cli
from hyperctl.transport import resolve_host

TOKENS = [
    *("-d", "--detach", "--detach=1", "-i", "-t", "-it", "-dit", "-id", "-ti"),
    *("-e", "A=1", "-eB=2", "--env", "--env=C=3", "-e=Z", "--env-file", "/f", "--env-file=/g"),
    *("-w", "/tmp", "-w/x", "--workdir=/w", "--workdir", "-u", "root", "-uroot", "--user"),
    *("-x", "-h", "--help", "--", "-", "--unknown", "-H", "--host=h", "exec", "c", "true"),
    *("sh", "-c", "echo hi", "", "=", "-de", "-ew"),
]


def click_parse(argv: list[str], monkeypatch) -> tuple[str, dict] | None:
    """(daemon address, exec's parameters) as click parses ``argv``; None if it did not
    run exec."""
    seen = []
    monkeypatch.setattr(
        exec_command, "run_exec", lambda client, **p: seen.append((client.base_url, p)) or 0
    )
    cli.main(args=argv, prog_name="hyper", standalone_mode=False)
    return seen[0] if seen else None


def same_as_click(argv: list[str], monkeypatch) -> bool:
    """True when the plain parse takes ``argv`` (and then it must agree with click)."""
    plain = parse_exec(argv)
    if plain is None:
        return False
    host, params = plain
    assert click_parse(argv, monkeypatch) == (resolve_host(host), params), argv
    return True


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("HYPER_HOST", "unix:///env.sock")
    return monkeypatch


@pytest.mark.parametrize(
    "argv",
    [
        ["exec", "c", "true"],
        ["exec", "-it", "c", "sh"],
        ["exec", "-i", "c", "cat"],
        ["exec", "-d", "c", "sleep", "1"],
        ["-H", "unix:///x.sock", "exec", "-e", "A=1", "--env=B", "-w", "/", "-u", "0", "c", "ls"],
        ["--host=unix:///y.sock", "exec", "--env-file", "f", "c", "ls", "-l", "--help"],
        ["exec", "c", "--", "x"],
        ["exec", "--", "c", "x"],
        ["exec", "-eK=V", "-uroot", "-w/tmp", "c", "-", "-x"],
    ],
)
def test_plain_command_lines_are_taken_and_agree_with_click(argv, env):
    assert same_as_click(argv, env)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["exec"],
        ["exec", "c"],
        ["exec", "--help"],
        ["--help", "exec", "c", "x"],
        ["exec", "-h", "c", "x"],
        ["exec", "--detach=1", "c", "x"],
        ["exec", "-e"],
        ["exec", "-x", "c", "true"],
        ["container", "exec", "c", "true"],
        ["-H"],
        ["ps"],
    ],
)
def test_anything_else_is_left_to_click(argv):
    assert parse_exec(argv) is None


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([[], ["-H", "/h"], ["--host=/h"], ["-H/h"], ["--host", "/h", "--"]]),
    st.lists(st.sampled_from(TOKENS), max_size=8),
)
def test_any_command_line_taken_agrees_with_click(prefix, tokens):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYPER_HOST", "unix:///env.sock")
        same_as_click([*prefix, "exec", *tokens], mp)
