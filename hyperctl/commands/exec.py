"""``exec``: a command in a running container, attached or detached."""

from __future__ import annotations

import contextlib
import sys

import click

from hyperapi.errors import HyperError
from hyperctl.commands.common import pass_client


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Run the command in the background.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-e", "--env", multiple=True, help="Set environment variables.")
@click.option("--env-file", multiple=True, help="Read environment variables from a file.")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("-u", "--user", help="Username or UID.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_client
def exec_(client, detach, interactive, tty, env, env_file, workdir, user, container, command):
    """Run a command in a running container: CONTAINER COMMAND [ARG...]."""
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
        with streams.RawTerminal() if raw else contextlib.nullcontext():
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
