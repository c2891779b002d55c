"""``hyper exec``'s options and body, click-free, and the entry point's path for its plain
command lines (``hyper [-H ADDR] exec [OPTIONS] CONTAINER COMMAND [ARG...]``), which never
imports click (see hyperctl/plainargs.py). The click command (hyperctl/commands/exec.py)
is built from the same options and runs the same body.
"""

from __future__ import annotations

import sys

from hyperapi.errors import HyperError
from hyperctl.plainargs import Opt, parse_plain

HOST = Opt(
    ("-H", "--host"),
    "host",
    "Daemon socket (unix:///run/hyper/hyperd.sock; env HYPER_HOST).",
    metavar="ADDR",
)

EXEC_OPTIONS = (
    Opt(("-d", "--detach"), "detach", "Run the command in the background.", flag=True),
    Opt(("-i", "--interactive"), "interactive", "Keep STDIN open.", flag=True),
    Opt(("-t", "--tty"), "tty", "Allocate a pseudo-TTY.", flag=True),
    Opt(("-e", "--env"), "env", "Set environment variables.", multiple=True),
    Opt(("--env-file",), "env_file", "Read environment variables from a file.", multiple=True),
    Opt(("-w", "--workdir"), "workdir", "Working directory inside the container."),
    Opt(("-u", "--user"), "user", "Username or UID."),
)


def parse_exec(args: list[str]) -> tuple[str | None, dict] | None:
    """(host, exec's parameters) for a plain ``hyper exec`` command line, as click would
    parse it; None for any other (click's then)."""
    top = parse_plain(args, (HOST,))
    if top is None or not top[1] or top[1][0] != "exec":
        return None
    sub = parse_plain(top[1][1:], EXEC_OPTIONS)
    if sub is None or len(sub[1]) < 2:
        return None
    params, (container, *command) = sub
    return top[0]["host"], {**params, "container": container, "command": tuple(command)}


def run_plain(args: list[str]) -> int | None:
    """Run a plain ``hyper exec`` command line: its exit code; None (nothing done) for any
    other command line."""
    parsed = parse_exec(args)
    if parsed is None:
        return None
    from hyperctl.endpoints.exec import ExecEndpoints  # not all of APIClient's: ~2 ms
    from hyperctl.exits import run_command

    host, params = parsed
    return run_command(lambda: run_exec(ExecEndpoints.for_cli(host), **params))


def run_exec(client, detach, interactive, tty, env, env_file, workdir, user, container, command):
    """Run ``command`` in ``container``: attached, the exec's exit code; detached, 0."""
    from hyperctl import streams

    environment = []
    if env or env_file:
        from hyperctl import opts

        for path in env_file:
            environment += opts.read_env_file(path)
        environment += opts.parse_env(env)
    size = streams.terminal_size() if tty else None
    created = client.exec_create(
        container,
        list(command),
        stdin=interactive and not detach,
        stdout=not detach,
        stderr=not detach,
        tty=tty,
        environment=environment or None,
        workdir=workdir,
        user=user,
        console_size=size,
    )
    exec_id = created["Id"]
    if detach:
        client.exec_start(exec_id, detach=True, tty=tty)
        return 0
    conn = client.exec_start(exec_id, tty=tty, console_size=size)
    pump = streams.StreamPump(conn, tty, stdin=sys.stdin.buffer if interactive else None)
    raw = tty and interactive and streams.isatty(sys.stdin)
    resize = (lambda h, w: client.exec_resize(exec_id, h, w)) if tty else None
    try:
        if raw:
            with streams.RawTerminal():
                streams.run_pump(pump, resize)
        else:  # not contextlib.nullcontext(): contextlib imports collections, functools...
            streams.run_pump(pump, resize)
    finally:
        conn.close()
    return exec_exit_code(client, exec_id)


def exec_exit_code(client, exec_id: str) -> int:
    """The exec's exit code: the daemon ends the stream only once the process has exited
    (as Docker's), so one inspect right after it tells."""
    info = client.exec_inspect(exec_id)
    if info.get("Running") or info.get("ExitCode") is None:
        raise HyperError(f"exec {exec_id[:12]} ended its output but not its process")
    return int(info["ExitCode"])
