"""The command registry (Docker's names and aliases, loaded lazily) and the new verbs'
option parsing, without a daemon."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import threading

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


class FakeExecDaemon:
    """hyperd's answers to one ``hyper exec c true`` on a unix socket: create, start
    (hijacked: one line on stdout, one on stderr), inspect (exit code 3)."""

    FRAMES = b"\1\0\0\0\0\0\0\4out\n" + b"\2\0\0\0\0\0\0\4err\n"
    ANSWERS = {
        b"POST /containers/c/exec ": (b"201 Created", b'{"Id": "e1"}'),
        b"POST /exec/e1/start ": (b"101 UPGRADED", None),
        b"GET /exec/e1/json ": (b"200 OK", b'{"Running": false, "ExitCode": 3}'),
    }

    def __init__(self, path: str):
        self.requests: list[bytes] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        with self.listener:
            for _ in self.ANSWERS:
                conn, _ = self.listener.accept()
                with conn:
                    conn.settimeout(10)
                    self._answer(conn)

    def _answer(self, conn):
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        size = int(head.lower().partition(b"content-length: ")[2].split(b"\r\n")[0] or 0)
        while len(body) < size:
            body += conn.recv(65536)
        self.requests.append(head + b"\r\n\r\n" + body)
        line = head.split(b"\r\n")[0]
        status, answer = next(a for r, a in self.ANSWERS.items() if line.startswith(r))
        if answer is None:
            ctype = b"application/vnd.docker.multiplexed-stream"
            conn.sendall(b"HTTP/1.1 %b\r\nContent-Type: %b\r\n" % (status, ctype))
            conn.sendall(b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" + self.FRAMES)
            return
        ctype = b"application/json"
        head = b"HTTP/1.1 %b\r\nContent-Type: %b\r\nContent-Length: %d\r\n\r\n"
        conn.sendall(head % (status, ctype, len(answer)) + answer)


def test_a_whole_exec_loads_none_of_the_stdlib_modules_it_can_do_without(tmp_path):
    """Each of these costs ~1 to 5 ms per ``hyper exec`` (json: re and its compiler;
    socket and signal: enum; contextlib: collections, functools): the exec path uses
    _socket, _signal and _json (hyperctl.fastjson) instead."""
    daemon = FakeExecDaemon(str(tmp_path / "d.sock"))
    avoided = ["json", "re", "socket", "signal", "enum", "selectors", "contextlib"]
    avoided += ["collections", "functools", "typing", "threading", "struct"]
    probe = (
        "import sys\nfrom hyperctl.cli import main\n"
        "try:\n    main(['exec', 'c', 'true'])\nexcept SystemExit as e:\n    code = e.code\n"
        f"print('EXIT', code, sorted(m for m in {avoided!r} if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYPER_HOST": f"unix://{tmp_path}/d.sock"}
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert (res.stdout, res.stderr) == ("out\nEXIT 3 []\n", "err\n")
    daemon.thread.join(10)
    create, start, inspect = daemon.requests
    assert create.endswith(
        b'\r\n\r\n{"AttachStdin": false, "AttachStdout": true, "AttachStderr": true, '
        b'"Tty": false, "Cmd": ["true"]}'
    )
    assert start.endswith(b'\r\n\r\n{"Detach": false, "Tty": false}')
    assert inspect.startswith(b"GET /exec/e1/json HTTP/1.1\r\n")


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
