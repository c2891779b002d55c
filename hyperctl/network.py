"""``hyper network``: create, ls, inspect, rm, connect, disconnect, prune (Docker's flags)."""

from __future__ import annotations

import json

import click

from hyperapi.errors import InvalidArgument
from hyperctl import opts
from hyperctl.commands.common import confirm, filter_option, for_each, format_option, pass_client

LS_HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}
LS_DEFAULT_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"


@click.group("network")
def network() -> None:
    """Manage networks."""


@network.command("create")
@click.option("-d", "--driver", default="bridge", show_default=True, help="Network driver.")
@click.option("--subnet", help="Subnet in CIDR form (default: one from the address pools).")
@click.option("--gateway", help="Gateway of the subnet.")
@click.option("--ip-range", help="Allocate container addresses from this part of the subnet.")
@click.option("--internal", is_flag=True, help="No access to or from outside the network.")
@click.option("--attachable", is_flag=True, help="Accepted (every network is attachable).")
@click.option("--label", multiple=True, help="Set metadata (k=v).")
@click.option("-o", "--opt", multiple=True, help="Driver options (k=v).")
@click.argument("name")
@pass_client
def create(client, driver, subnet, gateway, ip_range, internal, attachable, label,
           opt, name) -> None:  # fmt: skip
    """Create a network."""
    if (gateway or ip_range) and not subnet:
        raise InvalidArgument("--gateway and --ip-range need --subnet")
    pool = {k: v for k, v in (("Subnet", subnet), ("Gateway", gateway), ("IPRange", ip_range)) if v}
    body = {
        "Name": name,
        "CheckDuplicate": True,
        "Driver": driver,
        "Internal": internal,
        "Attachable": attachable,
        "Labels": opts.parse_labels(label),
        "Options": opts.parse_labels(opt),
        "IPAM": {"Driver": "default", "Config": [pool] if pool else []},
    }
    click.echo(client.create_network(body)["Id"])


def _context(n: dict, trunc: bool) -> dict:
    from hyperctl import formatting  # not at import: `hyper --help` loads every command

    return {
        "ID": formatting.short_id(n["Id"], trunc),
        "Name": n["Name"],
        "Driver": n["Driver"],
        "Scope": n.get("Scope", "local"),
        "IPv6": str(bool(n.get("EnableIPv6"))).lower(),
        "Internal": str(bool(n.get("Internal"))).lower(),
        "Labels": formatting.format_labels(n.get("Labels")),
        "CreatedAt": n.get("Created", ""),
    }


@network.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate the output.")
@filter_option("name, id, label, driver, type, dangling, scope")
@format_option("table, json, or a Go template ({{.Name}}).")
@pass_client
def ls(client, quiet, no_trunc, filters, fmt) -> None:
    """List networks."""
    from hyperctl import formatting

    nets = client.networks(opts.parse_filters(filters) or None)
    ctxs = [_context(n, not no_trunc) for n in nets]
    if quiet:
        out = "\n".join(c["ID"] for c in ctxs)
    elif fmt == "json":
        out = "\n".join(json.dumps(c, sort_keys=True) for c in ctxs)
    else:
        tpl = LS_DEFAULT_TABLE if not fmt or fmt == "table" else fmt
        out = formatting.render_template_table(tpl, ctxs, LS_HEADERS)
    if out:
        click.echo(out)


network.add_command(ls, "list")


@network.command("inspect")
@click.option("-f", "--format", "fmt", help="Go template ({{.IPAM.Config}}, {{json .}}).")
@click.argument("names", nargs=-1, required=True)
@pass_client
def inspect(client, fmt, names) -> int:
    """Display detailed information on one or more networks."""
    from hyperctl import formatting

    found = []
    code = for_each(names, lambda n: found.append(client.inspect_network(n)), echo_name=False)
    if fmt:
        tpl = formatting.Template(fmt)
        for obj in found:
            click.echo(tpl.render(obj))
    else:
        click.echo(json.dumps(found, indent=4, ensure_ascii=False))
    return code


@network.command("rm")
@click.argument("names", nargs=-1, required=True)
@pass_client
def rm(client, names) -> int:
    """Remove one or more networks."""
    return for_each(names, client.remove_network)


network.add_command(rm, "remove")


@network.command("connect")
@click.option("--alias", multiple=True, help="Add a network-scoped alias for the container.")
@click.option("--ip", help="IPv4 address (user-defined networks with a subnet).")
@click.option("--link", multiple=True, metavar="NAME[:ALIAS]", help="Add a link.")
@click.argument("net")
@click.argument("container")
@pass_client
def connect(client, alias, ip, link, net, container) -> None:
    """Connect a container to a network."""
    client.connect_network(net, container, list(alias), ip or "", list(link))


@network.command("disconnect")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect.")
@click.argument("net")
@click.argument("container")
@pass_client
def disconnect(client, force, net, container) -> None:
    """Disconnect a container from a network."""
    client.disconnect_network(net, container, force)


@network.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Filter (label=, until=).")
@pass_client
def prune(client, force, filters) -> None:
    """Remove all unused networks."""
    if not force and not confirm(
        "WARNING! This will remove all custom networks not used by at least one container."
    ):
        return
    res = client.prune_networks(opts.parse_filters(filters) or None)
    names = res.get("NetworksDeleted") or []
    if names:
        click.echo("Deleted Networks:\n" + "\n".join(names))
