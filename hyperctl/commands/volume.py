"""``volume create|ls|inspect|rm|prune``: volumes as Docker's ``local`` driver shows them
(in hyper a volume is a disk image that the container's VM mounts); and hyper's own
``volume snapshot|snapshots|snapshot-rm``: point-in-time copies of a volume."""

from __future__ import annotations

import click

from hyperapi.errors import InvalidArgument
from hyperctl import opts
from hyperctl.commands.common import (
    confirm,
    filter_option,
    for_each,
    format_option,
    pass_client,
    print_prune_report,
)
from hyperctl.group import LazyGroup

PRUNE_WARNING = "WARNING! This will remove all local volumes not used by at least one container."


@click.group(cls=LazyGroup, lazy={}, aliases={"list": "ls", "remove": "rm"})
def volume() -> None:
    """Manage volumes."""


def _options_map(items) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


@volume.command()
@click.option("-d", "--driver", default="local", show_default=True, help="Volume driver.")
@click.option("--name", "name_opt", hidden=True, help="Volume name.")
@click.option("--label", multiple=True, metavar="K=V", help="Set metadata for a volume.")
@click.option("-o", "--opt", multiple=True, metavar="K=V", help="Driver options (size=10g).")
@click.option("--from-snapshot", metavar="SNAPSHOT", help="Start with a snapshot's content.")
@click.argument("name", required=False)
@pass_client
def create(client, driver, name_opt, label, opt, from_snapshot, name) -> None:
    """Create a volume: [VOLUME]; print its name."""
    if name_opt and name:
        raise InvalidArgument(
            "conflicting options: cannot specify a volume-name through both --name and as a "
            "positional arg"
        )
    driver_opts = _options_map(opt)
    if from_snapshot:
        driver_opts["snapshot"] = from_snapshot
    vol = client.create_volume(name_opt or name, driver, driver_opts, opts.parse_labels(label))
    click.echo(vol["Name"])


@volume.command()
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@filter_option("dangling, driver, label, name")
@format_option()
@pass_client
def ls(client, quiet, filters, fmt) -> None:
    """List volumes."""
    from hyperctl.formats.volumes import format_volumes

    answer = client.volumes(opts.parse_filters(filters) or None)
    for warning in answer.get("Warnings") or []:
        click.echo(warning, err=True)
    out = format_volumes(answer.get("Volumes") or [], fmt=fmt, quiet=quiet)
    if out:
        click.echo(out)


@volume.command()
@click.option("-f", "--format", "fmt", help="json, or a Go template ({{.Mountpoint}}).")
@click.argument("names", nargs=-1, required=True)
@pass_client
def inspect(client, fmt, names) -> int:
    """Display detailed information on one or more volumes."""
    from hyperctl.commands.observe import inspect_objects

    return inspect_objects(client, fmt, "volume", names, sort_keys=True)


@volume.command()
@click.option("-f", "--force", is_flag=True, help="Do not complain about missing volumes.")
@click.argument("names", nargs=-1, required=True)
@pass_client
def rm(client, force, names) -> int:
    """Remove one or more volumes (not one a container uses)."""
    return for_each(names, lambda n: client.remove_volume(n, force))


@volume.command()
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help='Filter (e.g. "label=k=v").')
@pass_client
def prune(client, force, filters) -> None:
    """Remove the local volumes no container uses."""
    flt = opts.parse_filters(filters)
    if not force and not confirm(PRUNE_WARNING):
        return
    report = client.prune_volumes(flt or None)
    deleted = report.get("VolumesDeleted") or []
    print_prune_report("Volumes", deleted, int(report.get("SpaceReclaimed") or 0))


@volume.command()
@click.argument("volume_name", metavar="VOLUME")
@click.argument("name", required=False)
@pass_client
def snapshot(client, volume_name, name) -> None:
    """Take a consistent point-in-time copy of VOLUME (even in use); print its name."""
    click.echo(client.snapshot_volume(volume_name, name)["Name"])


@volume.command()
@click.option("-q", "--quiet", is_flag=True, help="Only display snapshot names.")
@format_option()
@click.argument("volume_name", metavar="[VOLUME]", required=False)
@pass_client
def snapshots(client, quiet, fmt, volume_name) -> None:
    """List the snapshots (of one volume, or of all)."""
    from hyperctl.formats.volumes import format_snapshots

    out = format_snapshots(client.snapshots(volume_name), fmt=fmt, quiet=quiet)
    if out:
        click.echo(out)


@volume.command("snapshot-rm")
@click.argument("names", nargs=-1, required=True)
@pass_client
def snapshot_rm(client, names) -> int:
    """Remove one or more snapshots (volumes made from them stay)."""
    return for_each(names, client.remove_snapshot)
