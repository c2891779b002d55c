"""The command registry (Docker's names and aliases, loaded lazily) and the new verbs'
option parsing, without a daemon."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import click
import pytest

from hyperapi.errors import InvalidArgument
from hyperctl.commands.lifecycle import prune_filters, update_body
from hyperctl.commands.observe import parse_tail
from hyperctl.commands.volume import volume
from hyperctl.group import cli, container, image, system
from tests.conftest import ROOT


def invoke(runner, args):
    return runner.invoke(cli, args, env={"HYPER_HOST": "unix:///nonexistent/hyperd.sock"})


def _resolve(group: click.Group, name: str) -> click.Command:
    ctx = click.Context(group)
    cmd = group.get_command(ctx, name)
    assert isinstance(cmd, click.Command), name
    return cmd


@pytest.mark.parametrize("group", [cli, container, image, system, volume])
def test_every_registered_command_loads_and_has_help(runner, group):
    names = group.list_commands(click.Context(group))
    assert names
    for name in names:
        cmd = _resolve(group, name)
        assert cmd.get_short_help_str(), name
        path = [] if group is cli else [group.name]
        res = invoke(runner, [*path, name, "--help"])
        assert res.exit_code == 0 and "Usage:" in res.stdout, (name, res.output)


def test_dockers_names_and_aliases_are_the_same_commands():
    ps = _resolve(cli, "ps")
    assert _resolve(container, "ls") is ps
    assert _resolve(container, "list") is ps and _resolve(container, "ps") is ps
    assert _resolve(container, "rm") is _resolve(container, "remove") is _resolve(cli, "rm")
    assert _resolve(image, "ls") is _resolve(image, "list") is _resolve(cli, "images")
    assert _resolve(image, "rm") is _resolve(image, "remove") is _resolve(cli, "rmi")
    assert _resolve(system, "events") is _resolve(cli, "events")
    assert _resolve(system, "info") is _resolve(cli, "info")
    assert _resolve(container, "cp") is _resolve(cli, "cp")
    assert _resolve(volume, "list") is _resolve(volume, "ls")
    assert _resolve(volume, "remove") is _resolve(volume, "rm")
    for verb in ("pause", "unpause", "top", "stats", "update", "rename", "exec", "run", "wait"):
        assert _resolve(container, verb) is _resolve(cli, verb)
    # the aliases are not listed in help, as Docker's
    assert "list" not in container.list_commands(click.Context(container))
    assert "prune" in container.list_commands(click.Context(container))
    assert "prune" not in cli.list_commands(click.Context(cli))


def _loaded_after(argvs: list[list[str]], modules: list[str]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``hyper`` with
    each of ``argvs`` (against a daemon that is not there)."""
    probe = (
        "import sys\nfrom hyperctl.cli import main\n"
        f"for argv in {argvs!r}:\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        f"print('LOADED', sorted(m for m in {modules!r} if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYPER_HOST": "unix:///nonexistent.sock"}
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert res.stdout.splitlines()[-1].startswith("LOADED "), res.stdout + res.stderr
    return ast.literal_eval(res.stdout.splitlines()[-1].removeprefix("LOADED "))


def test_help_does_not_load_the_http_stack():
    argvs = [["--help"], ["ps", "--help"], ["container", "--help"], ["version", "-x"]]
    stack = ["http.client", "hyperctl.httpconn", "hyperctl.client", "hyperctl.streams"]
    assert _loaded_after(argvs, [*stack, "hyperctl.formatting"]) == []


def test_exec_loads_no_heavy_module():
    """``hyper exec`` is timed (bench/run.py): each of these costs milliseconds per run
    (click ~45: a plain exec command line runs without it)."""
    heavy = ["click", "typing", "struct", "threading", "http.client", "email", "ssl"]
    heavy += ["urllib.parse", "shutil", "dataclasses", "hyperctl.opts", "hyperctl.formatting"]
    heavy += ["hyperctl.archive", "hyperctl.client", "hyperctl.endpoints.containers"]
    assert _loaded_after([["exec", "c", "true"]], [*heavy, "hyperctl.transport"]) == [
        "hyperctl.transport"
    ]


def test_update_body():
    restart = {"Name": "on-failure", "MaximumRetryCount": 2}
    assert update_body(restart, None, None, None) == {"RestartPolicy": restart}
    assert update_body(None, 512 << 20, 1_500_000_000, 512) == {
        "Memory": 512 << 20,
        "NanoCpus": 1_500_000_000,
        "CpuShares": 512,
    }
    with pytest.raises(InvalidArgument, match="one or more flags"):
        update_body(None, None, None, None)


def test_prune_filters_send_until_as_unix_seconds():
    flt = prune_filters(["until=2023-11-14T22:13:20Z", "label=tier=web", "label=x"])
    assert flt == {"until": ["1700000000.000000000"], "label": ["tier=web", "x"]}
    with pytest.raises(InvalidArgument, match="until"):
        prune_filters(["until=whenever"])


def test_parse_tail():
    assert [parse_tail(t) for t in ("all", "5", "0", "-1")] == ["all", "5", "0", "all"]
    with pytest.raises(InvalidArgument, match="--tail"):
        parse_tail("lots")


@pytest.mark.parametrize(
    "args, message",
    [
        (["update", "c1"], "you must provide one or more flags when using this command"),
        (["update", "--restart", "sometimes", "c1"], "invalid restart policy 'sometimes'"),
        (["update", "-m", "lots", "c1"], "lots"),
        (["rename", "c1", " "], "Neither old nor new names may be empty"),
        (["rename", "c1"], "Missing argument 'NEW_NAME'"),
        (["pause"], "Missing argument 'CONTAINERS...'"),
        (["top"], "Missing argument 'CONTAINER'"),
        (["logs", "--until", "whenever", "c1"], "invalid value for --until: 'whenever'"),
        (["logs", "--tail", "lots", "c1"], "invalid value for --tail: 'lots'"),
        (["events", "--since", "tomorrow"], "invalid value for --since: 'tomorrow'"),
        (["events", "--filter", "container"], "bad format of filter"),
        (["container", "prune", "-f", "--filter", "until=x"], "invalid value for until: 'x'"),
        (["system", "prune", "--bogus"], "No such option '--bogus'"),
        (["stats", "--bogus"], "No such option '--bogus'"),
        (["ps", "--filter", "status"], "bad format of filter"),
        (["container", "nosuch"], "No such command 'nosuch'"),
    ],
)
def test_usage_errors_are_one_line_and_125(runner, args, message):
    res = invoke(runner, args)
    assert res.exit_code == 125, res.output
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hyper: ") and message in lines[0], lines


def test_prune_asks_first_and_does_nothing_without_a_yes(runner):
    """No daemon is reachable here: the answer "n" must end the command before any request."""
    for group in ("container", "system"):
        res = runner.invoke(
            cli,
            [group, "prune"],
            input="n\n",
            env={"HYPER_HOST": "unix:///nonexistent/hyperd.sock"},
        )
        assert res.exit_code == 0, res.output
        assert res.stdout.startswith("WARNING! This will remove")
        assert res.stdout.endswith("Are you sure you want to continue? [y/N] ")
    res = runner.invoke(
        cli, ["container", "prune"], input="y\n", env={"HYPER_HOST": "unix:///nonexistent.sock"}
    )
    assert res.exit_code == 125 and "cannot connect to hyperd" in res.stderr
