"""``hyper``'s click group: Docker's command line workflow over hyperd (flags → API calls,
formatting only).

This module holds the ``hyper`` group, its error handling and the registration of every
command; the commands live in ``hyperctl/commands/`` and are imported only when used. The
entry point is ``hyperctl.cli``.
"""

from __future__ import annotations

import importlib
import sys

import click

from hyperctl.commands.common import Session
from hyperctl.execplain import HOST
from hyperctl.exits import INTERRUPTED_EXIT, USAGE_EXIT, print_error, run_command
from hyperctl.plainargs import click_options

_NoArgsIsHelp = getattr(click.exceptions, "NoArgsIsHelpError", ())


class LazyGroup(click.Group):
    """A group whose commands are ``"module:attribute"`` references, imported on first
    use; ``aliases`` are extra names that ``--help`` does not list (as Docker's)."""

    def __init__(self, *args, lazy: dict[str, str], aliases: dict[str, str] | None = None, **kw):
        super().__init__(*args, **kw)
        self.lazy = lazy
        self.aliases = aliases or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        name = self.aliases.get(name, name)
        if name not in self.commands and name in self.lazy:
            module, _, attr = self.lazy[name].partition(":")
            self.commands[name] = getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


class HyperGroup(LazyGroup):
    """Routes every error to one ``hyper: <message>`` line and Docker's exit codes
    (125 for usage and daemon errors), also under click's CliRunner."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        code = self._main(args, prog_name or "hyper", complete_var, **extra)
        if not standalone_mode:
            return code
        sys.exit(code)

    def _main(self, args, prog_name, complete_var, **extra) -> int:
        return run_command(lambda: self._click_main(args, prog_name, complete_var, **extra))

    def _click_main(self, args, prog_name, complete_var, **extra) -> object:
        """Click's main, its errors said as Docker's (run_command says the others)."""
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NoArgsIsHelp as e:
            click.echo(e.ctx.get_help())
            return 0
        except click.UsageError as e:
            cmd = e.ctx.command_path if e.ctx is not None else prog_name
            print_error(f"{e.format_message()} (see '{cmd} --help')")
            return USAGE_EXIT
        except click.ClickException as e:
            print_error(e.format_message())
            return USAGE_EXIT
        except click.Abort:
            return INTERRUPTED_EXIT


# --- registration: every command, by the module that defines it ---------------------------

_C = "hyperctl.commands."
COMMANDS = {
    "attach": _C + "run:attach",
    "create": _C + "run:create",
    "run": _C + "run:run",
    "start": _C + "run:start",
    "exec": _C + "exec:exec_",
    "kill": _C + "lifecycle:kill",
    "pause": _C + "lifecycle:pause",
    "rename": _C + "lifecycle:rename",
    "restart": _C + "lifecycle:restart",
    "rm": _C + "lifecycle:rm",
    "stop": _C + "lifecycle:stop",
    "unpause": _C + "lifecycle:unpause",
    "update": _C + "lifecycle:update",
    "wait": _C + "lifecycle:wait",
    "inspect": _C + "observe:inspect",
    "logs": _C + "observe:logs",
    "port": _C + "observe:port",
    "ps": _C + "observe:ps",
    "top": _C + "observe:top",
    "stats": _C + "stats:stats",
    "images": _C + "images:images",
    "load": _C + "images:load",
    "pull": _C + "images:pull",
    "rmi": _C + "images:rmi",
    "save": _C + "images:save",
    "tag": _C + "images:tag",
    "login": _C + "registry:login",
    "logout": _C + "registry:logout",
    "events": _C + "system:events",
    "info": _C + "system:info",
    "version": _C + "system:version",
    "cp": _C + "cp:cp",
    "volume": _C + "volume:volume",
    **{n: f"hyperctl.commands.images_out:{n}_" for n in ("build", "commit", "diff", "export")},
    **{n: f"hyperctl.commands.images_out:{n}_" for n in ("history", "import", "push")},
    # a subject's group registers here, one line each
    "network": "hyperctl.network:network",
}

CONTAINER_COMMANDS = {
    **{
        name: COMMANDS[name]
        for name in [
            "attach",
            "commit",
            "cp",
            "create",
            "diff",
            "exec",
            "export",
            "kill",
            "logs",
            "pause",
            "port",
            "rename",
            "restart",
            "rm",
            "run",
            "start",
            "stats",
            "stop",
            "top",
            "unpause",
            "update",
            "wait",
        ]
    },
    "inspect": _C + "observe:container_inspect",
    "ls": _C + "observe:ps",
    "prune": _C + "lifecycle:prune",
}

IMAGE_COMMANDS = {
    **{n: COMMANDS[n] for n in ("build", "history", "import", "push")},
    "inspect": _C + "observe:image_inspect",
    "load": COMMANDS["load"],
    "ls": COMMANDS["images"],
    "pull": COMMANDS["pull"],
    "rm": COMMANDS["rmi"],
    "save": COMMANDS["save"],
    "tag": COMMANDS["tag"],
}

SYSTEM_COMMANDS = {
    "df": _C + "system:df",
    "events": COMMANDS["events"],
    "info": COMMANDS["info"],
    "prune": _C + "system:prune",
}


@click.group(cls=HyperGroup, lazy=COMMANDS, context_settings={"max_content_width": 100})
@click_options([HOST], envvar="HYPER_HOST")
@click.pass_context
def cli(ctx: click.Context, host: str | None) -> None:
    """Run Docker images, each in its own lightweight virtual machine."""
    ctx.obj = Session(host)


@click.group(
    cls=LazyGroup, lazy=CONTAINER_COMMANDS, aliases={"list": "ls", "ps": "ls", "remove": "rm"}
)
def container() -> None:
    """Manage containers."""


@click.group(cls=LazyGroup, lazy=IMAGE_COMMANDS, aliases={"list": "ls", "remove": "rm"})
def image() -> None:
    """Manage images."""


@click.group(cls=LazyGroup, lazy=SYSTEM_COMMANDS)
def system() -> None:
    """Manage hyper."""


for _group in (container, image, system):
    cli.add_command(_group)
