"""The daemon as a whole: version, info, events, system df, system prune."""

from __future__ import annotations

import sys
from typing import Any

import click

from hyperctl.commands.common import filter_option, format_option, pass_client

CLIENT_VERSION = "0.1.0"
CLIENT_API_VERSION = "1.41"


def _kv_block(title: str, rows: list[tuple[str, Any]], indent: int = 1) -> list[str]:
    lines = [f"{' ' * (indent - 1)}{title}:"] if title else []
    width = max((len(k) for k, _ in rows), default=0) + 2
    for k, v in rows:
        lines.append(f"{' ' * indent}{(k + ':').ljust(width)}{'' if v is None else v}")
    return lines


def _render(fmt: str, obj: Any) -> str:
    from hyperctl.formatting import Template

    return Template(fmt).render(obj)


@click.command()
@click.option("-f", "--format", "fmt", help="Go template.")
@pass_client
def version(client, fmt) -> None:
    """Show the hyper client and daemon versions."""
    import platform

    client_info = {
        "Version": CLIENT_VERSION,
        "ApiVersion": CLIENT_API_VERSION,
        "PythonVersion": platform.python_version(),
        "Os": sys.platform,
        "Arch": platform.machine(),
    }
    if fmt:
        click.echo(_render(fmt, {"Client": client_info, "Server": client.version()}))
        return
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    lines = _kv_block(
        "Client",
        [
            ("Version", CLIENT_VERSION),
            ("API version", CLIENT_API_VERSION),
            ("Python version", platform.python_version()),
            ("OS/Arch", f"{sys.platform}/{arch}"),
        ],
    )
    click.echo("\n".join(lines) + "\n")
    s = client.version()
    lines = ["Server:"] + _kv_block(
        " Engine",
        [
            ("Version", s.get("Version")),
            ("API version", f"{s.get('ApiVersion')} (minimum version {s.get('MinAPIVersion')})"),
            ("OS/Arch", f"{s.get('Os')}/{s.get('Arch')}"),
            ("Kernel Version", s.get("KernelVersion")),
        ],
        indent=2,
    )
    if s.get("Hyper"):
        lines += _kv_block(" Hyper", list(s["Hyper"].items()), indent=2)
    click.echo("\n".join(lines))


@click.command()
@click.option("-f", "--format", "fmt", help="Go template.")
@pass_client
def info(client, fmt) -> None:
    """Display system-wide information."""
    from hyperctl.formatting import bytes_size

    i = client.info()
    if fmt:
        click.echo(_render(fmt, i))
        return
    mem = i.get("MemTotal")
    lines = ["Server:"] + _kv_block("", [("Containers", i.get("Containers"))])
    lines += _kv_block(
        "",
        [
            ("Running", i.get("ContainersRunning")),
            ("Paused", i.get("ContainersPaused", 0)),
            ("Stopped", i.get("ContainersStopped")),
        ],
        indent=2,
    )
    rows = [
        ("Images", i.get("Images")),
        ("Server Version", i.get("ServerVersion")),
        ("Storage Driver", i.get("Driver")),
        ("Kernel Version", i.get("KernelVersion")),
        ("Operating System", i.get("OperatingSystem")),
        ("CPUs", i.get("NCPU")),
        ("Total Memory", bytes_size(mem) if mem else None),
        ("Name", i.get("Name")),
        ("ID", i.get("ID")),
        ("Hyper Root Dir", i.get("DockerRootDir")),
    ]
    lines += _kv_block("", rows)
    hyper = i.get("Hyper") or {}
    if hyper:
        lines += _kv_block(
            "",
            [
                ("Accel", hyper.get("Accel")),
                ("Default CPUs", hyper.get("DefaultCpus")),
                ("Default Memory", hyper.get("DefaultMemory")),
                ("VM Pool", _pool(hyper.get("VMPool"))),
                ("VM Template", hyper.get("VMTemplate")),
            ],
        )
    click.echo("\n".join(lines))


@click.command()
@filter_option("container, event, image, label, network, type, volume, daemon")
@click.option("--format", "fmt", help="json, or a Go template ({{.Action}}).")
@click.option("--since", help="Events since a time: RFC 3339, unix seconds or relative (10m).")
@click.option("--until", help="Stream until a time: RFC 3339, unix seconds or relative.")
@pass_client
def events(client, filters, fmt, since, until) -> None:
    """Get real time events from the daemon."""
    import json

    from hyperctl import opts
    from hyperctl.formats.system import event_context, event_line
    from hyperctl.formatting import Template

    tpl = Template(fmt) if fmt and fmt != "json" else None
    stream = client.events(
        since=opts.parse_time(since, "--since") if since else None,
        until=opts.parse_time(until, "--until") if until else None,
        filters=opts.parse_filters(filters),
    )
    for event in stream:
        if fmt == "json":
            line = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        else:
            line = tpl.render(event_context(event)) if tpl else event_line(event)
        click.echo(line)


@click.command()
@format_option("table, json, or a Go template ({{.Type}}).")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
@pass_client
def df(client, fmt, verbose) -> None:
    """Show hyper's disk usage."""
    from hyperctl.formats.system import format_df, format_df_verbose

    usage = client.df()
    click.echo(format_df_verbose(usage) if verbose else format_df(usage, fmt))


@click.command()
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help='Filter (e.g. "label=<key>=<value>").')
@pass_client
def prune(client, force: bool, filters) -> None:
    """Remove unused data: stopped containers (the daemon prunes nothing else yet)."""
    from hyperctl.commands.lifecycle import prune_stopped

    warning = "WARNING! This will remove:\n  - all stopped containers\n"
    prune_stopped(client, force, filters, warning)


def _pool(pool: dict | None) -> str | None:
    """Like "1/2 ready" (VMs booted and waiting, of the pool's size); "off" for no pool."""
    if not pool:
        return None
    return f"{pool.get('Ready', 0)}/{pool['Size']} ready" if pool.get("Size") else "off"
