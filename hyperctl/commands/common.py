"""What every command module shares: the client of the invocation, one-line errors,
per-name loops, option callbacks, confirmations."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from typing import Any

import click

from hyperapi.errors import HyperError
from hyperctl.errors import DaemonUnreachable
from hyperctl.exits import USAGE_EXIT, print_error


class Session:
    """What the ``hyper`` group's options give the commands: the client, made on first use
    (so ``--help`` and usage errors never load the HTTP stack)."""

    def __init__(self, host: str | None):
        self.host = host
        self._client = None

    @property
    def client(self):
        """The :class:`hyperctl.client.APIClient` for ``--host``."""
        if self._client is None:
            from hyperctl.client import APIClient

            self._client = APIClient.for_cli(self.host)
        return self._client


def pass_client(f: Callable) -> Callable:
    """Give the command the invocation's APIClient as its first argument."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        session = click.get_current_context().find_object(Session)
        if session is None:  # a command invoked on its own, outside the hyper group
            session = Session(None)
        return f(session.client, *args, **kwargs)

    return wrapper


def for_each(names: Iterable[str], action: Callable[[str], Any], echo_name: bool = True) -> int:
    """Apply ``action`` to each name; print names (or errors, one line each); exit code."""
    failed = False
    for name in names:
        try:
            out = action(name)
        except DaemonUnreachable:
            raise
        except HyperError as e:
            print_error(e.message)
            failed = True
            continue
        if echo_name:
            click.echo(name if out is None else out)
    return USAGE_EXIT if failed else 0


def for_each_at_once(names: Iterable[str], action: Callable[[str], Any], limit: int = 50) -> int:
    """``for_each`` with the actions running at once (up to ``limit``), as the docker CLI
    runs rm, stop, kill, restart, pause and unpause: 50 containers' VMs go down together,
    not one after another. Names and errors still print in the order given."""
    names = list(names)
    if len(names) < 2:
        return for_each(names, action)
    from concurrent.futures import ThreadPoolExecutor  # the API client opens a socket per call

    with ThreadPoolExecutor(min(limit, len(names))) as pool:
        pending = iter([pool.submit(action, name) for name in names])
        return for_each(names, lambda _name: next(pending).result())


def parsed_by(parse: Callable[[Any], Any]) -> Callable:
    """A click callback running ``parse`` on the value; its HyperError is a bad parameter."""

    def callback(ctx, param, value):
        if value is None:
            return None
        try:
            return parse(value)
        except HyperError as e:
            raise click.BadParameter(e.message) from None

    return callback


def confirm(warning: str) -> bool:
    """Docker's prompt: ``WARNING...`` then ``Are you sure you want to continue? [y/N] ``;
    true only for a ``y`` answer on stdin (any case)."""
    click.echo(f"{warning}\nAre you sure you want to continue? [y/N] ", nl=False)
    return sys.stdin.readline().strip().lower() == "y"


def format_option(help_text: str = "table, json, or a Go template ({{.ID}}).") -> Callable:
    """``--format`` as Docker's listing commands take it."""
    return click.option("--format", "fmt", metavar="FORMAT", help=help_text)


def filter_option(keys: str) -> Callable:
    """``-f/--filter KEY=VALUE`` (repeatable), naming the keys the daemon accepts."""
    return click.option(
        "-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE", help=f"Filter: {keys}."
    )


def print_prune_report(title: str, deleted: list[str], reclaimed: int) -> None:
    """Docker's prune output: ``Deleted <title>:`` and the names (when any), then the space
    reclaimed."""
    from hyperctl.formatting import human_size

    if deleted:
        click.echo(f"Deleted {title}:\n" + "".join(f"{name}\n" for name in deleted))
    click.echo(f"Total reclaimed space: {human_size(reclaimed if deleted else 0, 4)}")
