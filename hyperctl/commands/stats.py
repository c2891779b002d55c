"""``stats``: live (or one-shot) resource usage of containers' VMs."""

from __future__ import annotations

import sys
import threading
import time

import click

from hyperapi.errors import Conflict, HyperError
from hyperctl.commands.common import format_option, pass_client

REFRESH = 1.0  # seconds between two tables, as Docker's


class Sampler:
    """The latest stats sample of one container, read from its stream in a thread."""

    def __init__(self, client, container: str, ident: str = ""):
        self.container, self.ident = container, ident
        self.sample: dict | None = None
        self.error: HyperError | None = None
        self.done = False
        self._client = client
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for sample in self._client.stats(self.ident or self.container, stream=True):
                self.sample = sample
        except HyperError as e:
            self.error = e
        finally:
            self.done = True


def _one_shot(client, targets: list[tuple[str, str]]) -> list[tuple[str, str, dict | None]]:
    """One sample of each (container, ident) at once, in parallel (each takes a second)."""
    results: dict[int, dict | None | HyperError] = {}

    def fetch(i: int, ref: str) -> None:
        try:
            results[i] = client.stats(ref, stream=False)
        except Conflict:  # not running: a row of --
            results[i] = None
        except HyperError as e:
            results[i] = e

    threads = [
        threading.Thread(target=fetch, args=(i, ident or name), daemon=True)
        for i, (name, ident) in enumerate(targets)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = []
    for i, (name, ident) in enumerate(targets):
        if isinstance(results.get(i), HyperError):
            raise results[i]
        out.append((name, ident, results.get(i)))
    return out


def _targets(client, containers, all_: bool) -> list[tuple[str, str]]:
    """(shown name, ID) pairs: the named containers, or the running (all with -a) ones."""
    if containers:
        return [(c, "") for c in containers]
    return [(c["Id"][:12], c["Id"]) for c in client.containers(all=all_)]


def _draw(text: str, first: bool) -> None:
    """Redraw the table in place, as Docker's: home, each line then erase-to-end-of-line,
    then erase below (the screen is cleared once, at the start)."""
    out = "\x1b[2J" if first else ""
    out += "\x1b[H" + "".join(f"{line}\x1b[K\n" for line in text.split("\n")) + "\x1b[J"
    sys.stdout.write(out)
    sys.stdout.flush()


def _live(client, containers, all_: bool, fmt, trunc: bool) -> None:
    from hyperctl.formats.stats import format_stats, stats_row

    samplers: dict[str, Sampler] = {}
    first = True
    while True:
        targets = _targets(client, containers, all_) if not containers or first else None
        if targets is not None:
            keep = {name for name, _ in targets}
            samplers = {k: v for k, v in samplers.items() if k in keep}
            for name, ident in targets:
                samplers.setdefault(name, Sampler(client, name, ident))
        for s in samplers.values():
            if s.done and s.error is not None and not isinstance(s.error, Conflict):
                raise s.error
        rows = [stats_row(s.container, s.sample, trunc, s.ident) for s in samplers.values()]
        _draw(format_stats(rows, fmt), first)
        first = False
        time.sleep(REFRESH)


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default: running).")
@format_option("table, table TEMPLATE, json, or a Go template ({{.CPUPerc}}).")
@click.option("--no-stream", is_flag=True, help="Print the first result only.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.argument("containers", nargs=-1)
@pass_client
def stats(client, all_, fmt, no_stream, no_trunc, containers) -> None:
    """Display a live stream of containers' resource usage: [CONTAINER...]."""
    from hyperctl.formats.stats import format_stats, stats_row

    if not no_stream:
        _live(client, containers, all_, fmt, not no_trunc)
        return
    samples = _one_shot(client, _targets(client, containers, all_))
    rows = [stats_row(name, sample, not no_trunc, ident) for name, ident, sample in samples]
    out = format_stats(rows, fmt)
    if out:
        click.echo(out)
