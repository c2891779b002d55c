"""Registry credentials: login, logout."""

from __future__ import annotations

import sys

import click

from hyperapi.errors import InvalidArgument
from hyperctl.commands.common import pass_client


def _password(username: str | None, password: str | None, password_stdin: bool) -> str | None:
    if password and password_stdin:
        raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise InvalidArgument("must provide --username with --password-stdin")
        return sys.stdin.read().rstrip("\r\n")
    if password:
        click.echo(
            "WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True
        )
    return password


@click.command()
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password.")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@click.argument("server", required=False)
@pass_client
def login(client, username, password, password_stdin, server) -> None:
    """Log in to a registry (Docker Hub by default)."""
    password = _password(username, password, password_stdin)
    if not username:
        username = click.prompt("Username", err=False).strip()
    if not password:
        from hyperctl.streams import isatty

        if isatty(sys.stdin):
            import getpass

            password = getpass.getpass("Password: ")
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    if not username or not password:
        raise InvalidArgument("username and password are required")
    res = client.login(username, password, server)
    click.echo((res or {}).get("Status") or "Login Succeeded")


@click.command()
@click.argument("server", required=False)
@pass_client
def logout(client, server) -> None:
    """Log out from a registry (Docker Hub by default)."""
    from hyperctl.errors import NotFoundError

    shown = server or "https://index.docker.io/v1/"
    try:
        client.logout(server)
    except NotFoundError:
        click.echo(f"Not logged in to {shown}")
        return
    click.echo(f"Removing login credentials for {shown}")
