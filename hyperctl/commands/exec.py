"""``exec``: a command in a running container, attached or detached (its options and body
are hyperctl.execplain's, shared with the entry point's click-free path)."""

from __future__ import annotations

import click

from hyperctl.commands.common import pass_client
from hyperctl.execplain import EXEC_OPTIONS, run_exec
from hyperctl.plainargs import click_options


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click_options(EXEC_OPTIONS)
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_client
def exec_(client, **params):
    """Run a command in a running container: CONTAINER COMMAND [ARG...]."""
    return run_exec(client, **params)
