"""Changing containers: stop, restart, kill, rm, pause, unpause, rename, update, wait,
container prune."""

from __future__ import annotations

import click

from hyperapi.errors import InvalidArgument
from hyperctl import opts
from hyperctl.commands.common import (
    confirm,
    for_each,
    for_each_at_once,
    parsed_by,
    pass_client,
    print_prune_report,
)


@click.command()
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds before killing.")
@click.argument("containers", nargs=-1, required=True)
@pass_client
def stop(client, timeout, containers) -> int:
    """Stop one or more running containers."""
    return for_each_at_once(containers, lambda c: client.stop(c, timeout))


@click.command()
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds before killing.")
@click.argument("containers", nargs=-1, required=True)
@pass_client
def restart(client, timeout, containers) -> int:
    """Restart one or more containers."""
    return for_each_at_once(containers, lambda c: client.restart(c, timeout))


@click.command()
@click.option("-s", "--signal", "sig", default="KILL", show_default=True, help="Signal to send.")
@click.argument("containers", nargs=-1, required=True)
@pass_client
def kill(client, sig: str, containers) -> int:
    """Kill one or more running containers."""
    return for_each_at_once(containers, lambda c: client.kill(c, sig))


@click.command()
@click.option("-f", "--force", is_flag=True, help="Kill and remove a running container.")
@click.option("-v", "--volumes", is_flag=True, help="Remove its anonymous volumes too.")
@click.argument("containers", nargs=-1, required=True)
@pass_client
def rm(client, force: bool, volumes: bool, containers) -> int:
    """Remove one or more containers."""
    return for_each_at_once(containers, lambda c: client.remove_container(c, force, volumes))


@click.command()
@click.argument("containers", nargs=-1, required=True)
@pass_client
def pause(client, containers) -> int:
    """Pause all processes within one or more containers (their VMs are suspended)."""
    return for_each_at_once(containers, client.pause)


@click.command()
@click.argument("containers", nargs=-1, required=True)
@pass_client
def unpause(client, containers) -> int:
    """Unpause all processes within one or more containers."""
    return for_each_at_once(containers, client.unpause)


@click.command()
@click.argument("container")
@click.argument("new_name")
@pass_client
def rename(client, container: str, new_name: str) -> None:
    """Rename a container: CONTAINER NEW_NAME."""
    if not container.strip() or not new_name.strip():
        raise InvalidArgument("Neither old nor new names may be empty")
    client.rename(container, new_name.strip())


def update_body(restart, memory, cpus, cpu_shares) -> dict:
    """The ``POST /containers/{id}/update`` body from ``update``'s flags."""
    body: dict = {}
    if restart is not None:
        body["RestartPolicy"] = restart
    if memory is not None:
        body["Memory"] = memory
    if cpus is not None:
        body["NanoCpus"] = cpus
    if cpu_shares is not None:
        body["CpuShares"] = cpu_shares
    if not body:
        raise InvalidArgument("you must provide one or more flags when using this command")
    return body


@click.command()
@click.option(
    "--restart",
    callback=parsed_by(opts.parse_restart),
    help="Restart policy (no|on-failure[:N]|always|unless-stopped).",
)
@click.option("-m", "--memory", callback=parsed_by(opts.parse_memory), help="Memory limit.")
@click.option("--cpus", callback=parsed_by(opts.parse_cpus), help="Number of CPUs.")
@click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight).")
@click.argument("containers", nargs=-1, required=True)
@pass_client
def update(client, restart, memory, cpus, cpu_shares, containers) -> int:
    """Update the configuration of one or more containers."""
    body = update_body(restart, memory, cpus, cpu_shares)
    warnings: list[str] = []

    def apply(name: str) -> None:
        warnings.extend((client.update_container(name, body) or {}).get("Warnings") or [])

    code = for_each(containers, apply)
    for w in warnings:
        click.echo(w, err=True)
    return code


@click.command()
@click.argument("containers", nargs=-1, required=True)
@pass_client
def wait(client, containers) -> int:
    """Block until containers stop; print their exit codes."""
    return for_each(containers, lambda c: client.wait(c).get("StatusCode", 0))


def prune_filters(items) -> dict[str, list[str]]:
    """``--filter`` of the prune commands: ``until`` times become unix timestamps (the
    daemon takes those), ``label`` passes as it is."""
    filters = opts.parse_filters(items)
    if "until" in filters:
        filters["until"] = [f"{opts.parse_time(v, 'until'):.9f}" for v in filters["until"]]
    return filters


def prune_stopped(client, force: bool, filters, warning: str) -> None:
    """Ask (unless ``force``), remove the stopped containers, print Docker's report: the
    deleted IDs, then the space reclaimed."""
    flt = prune_filters(filters)
    if not force and not confirm(warning):
        return
    report = client.prune_containers(flt or None)
    deleted = report.get("ContainersDeleted") or []
    print_prune_report("Containers", deleted, int(report.get("SpaceReclaimed") or 0))


@click.command()
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help='Filter (e.g. "until=24h").')
@pass_client
def prune(client, force: bool, filters) -> None:
    """Remove all stopped containers."""
    prune_stopped(client, force, filters, "WARNING! This will remove all stopped containers.")
