"""Looking at containers: ps, inspect, port, top, logs."""

from __future__ import annotations

import sys

import click

from hyperapi.errors import InvalidArgument, NotFound
from hyperctl.commands.common import (
    USAGE_EXIT,
    filter_option,
    format_option,
    pass_client,
    print_error,
)

TOP_MINWIDTH = 20  # docker top: tabwriter.NewWriter(out, 20, 1, 3, ' ', 0)


@click.command("ps")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers.")
@click.option("-q", "--quiet", is_flag=True, help="Only display IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@filter_option("status, name, id, label, ancestor, exited, before, since, network, publish, expose")
@format_option()
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container.")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers.")
@pass_client
def ps(client, all_, quiet, no_trunc, filters, fmt, latest, last) -> None:
    """List containers."""
    from hyperctl import opts
    from hyperctl.formats.containers import format_containers

    flt = opts.parse_filters(filters)
    if latest:
        last = 1
    limit = last if last > 0 else None
    containers = client.containers(all=all_ or limit is not None, filters=flt, limit=limit)
    out = format_containers(containers, fmt=fmt, quiet=quiet, trunc=not no_trunc)
    if out:
        click.echo(out)


def inspect_objects(client, fmt: str | None, kind: str | None, names) -> int:
    """Print the objects (a JSON array, or a template per object); errors for the missing."""
    from hyperctl.errors import NotFoundError

    found, missing = [], []
    for name in names:
        obj = None
        for k in ("container", "image") if kind is None else (kind,):
            get = client.inspect_container if k == "container" else client.inspect_image
            try:
                obj = get(name)
                break
            except NotFoundError:
                continue
        if obj is None:
            missing.append(name)
        else:
            found.append(obj)
    if fmt and fmt != "json":
        from hyperctl.formatting import Template

        tpl = Template(fmt)
        for obj in found:
            click.echo(tpl.render(obj))
    else:
        import json

        click.echo(json.dumps(found, indent=4, ensure_ascii=False))
    for name in missing:
        print_error(f"No such {kind or 'object'}: {name}")
    return USAGE_EXIT if missing else 0


_INSPECT_FORMAT = "json, or a Go template ({{.State.Status}}, {{json .}})."


@click.command()
@click.option("-f", "--format", "fmt", help=_INSPECT_FORMAT)
@click.option(
    "--type",
    "kind",
    type=click.Choice(["container", "image"]),
    help="Only inspect objects of the given type.",
)
@click.argument("names", nargs=-1, required=True)
@pass_client
def inspect(client, fmt, kind, names) -> int:
    """Low-level information on containers or images."""
    return inspect_objects(client, fmt, kind, names)


@click.command("inspect")
@click.option("-f", "--format", "fmt", help=_INSPECT_FORMAT)
@click.argument("containers", nargs=-1, required=True)
@pass_client
def container_inspect(client, fmt, containers) -> int:
    """Display detailed information on one or more containers."""
    return inspect_objects(client, fmt, "container", containers)


@click.command("inspect")
@click.option("-f", "--format", "fmt", help=_INSPECT_FORMAT)
@click.argument("images", nargs=-1, required=True)
@pass_client
def image_inspect(client, fmt, images) -> int:
    """Display detailed information on one or more images."""
    return inspect_objects(client, fmt, "image", images)


@click.command()
@click.argument("container")
@click.argument("port", required=False)
@pass_client
def port(client, container, port) -> None:
    """List a container's published ports (or the host address of one)."""
    ports = (client.inspect_container(container).get("NetworkSettings") or {}).get("Ports") or {}
    if port and "/" not in port:
        port += "/tcp"
    for key, bindings in sorted(ports.items()):
        if port and key != port:
            continue
        for b in bindings or []:
            addr = f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}"
            click.echo(addr if port else f"{key} -> {addr}")
    if port and port not in ports:
        raise NotFound(f"no public port '{port}' published for {container}")


@click.command(context_settings={"allow_interspersed_args": False})
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@pass_client
def top(client, container: str, ps_args) -> None:
    """Display the running processes of a container: CONTAINER [ps OPTIONS]."""
    from hyperctl.formatting import render_table

    procs = client.top(container, " ".join(ps_args))
    rows = [list(procs.get("Titles") or [])] + [list(p) for p in procs.get("Processes") or []]
    click.echo(render_table(rows, minwidth=TOP_MINWIDTH))


def parse_tail(tail: str) -> str:
    """``--tail``: a count of lines, or ``all`` (a negative count means all, as Docker)."""
    if tail == "all":
        return tail
    try:
        return "all" if int(tail) < 0 else str(int(tail))
    except ValueError:
        raise InvalidArgument(f"invalid value for --tail: {tail!r}") from None


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-n", "--tail", default="all", help="Lines to show from the end (or all).")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--since", help="Since a time: RFC 3339, unix seconds, or relative (10m).")
@click.option("--until", help="Before a time: RFC 3339, unix seconds, or relative (10m).")
@click.argument("container")
@pass_client
def logs(client, follow, tail, timestamps, since, until, container) -> None:
    """Fetch the logs of a container."""
    from hyperctl import opts, streams

    frames = client.logs(
        container,
        follow=follow,
        timestamps=timestamps,
        tail=parse_tail(tail),
        since=opts.parse_time(since, "--since") if since else None,
        until=opts.parse_time(until, "--until") if until else None,
    )
    streams.write_frames(frames, sys.stdout.buffer, sys.stderr.buffer)
