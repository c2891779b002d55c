"""``ps``: the fields a container row shows and its default table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hyperctl.formatting import (
    ago,
    ellipsis,
    format_labels,
    format_listing,
    go_quote,
    go_time,
    parse_timestamp,
    short_id,
)

PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Status": "STATUS",
    "State": "STATE",
    "Ports": "PORTS",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Size": "SIZE",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "LocalVolumes": "LOCAL VOLUMES",
}

PS_DEFAULT_TABLE = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
)


def format_ports(ports: Sequence[Mapping[str, Any]] | None) -> str:
    out = []
    for p in ports or []:
        proto = p.get("Type", "tcp")
        if p.get("PublicPort"):
            out.append(
                f"{p.get('IP', '0.0.0.0')}:{p['PublicPort']}->{p.get('PrivatePort')}/{proto}"
            )
        elif p.get("PrivatePort"):
            out.append(f"{p['PrivatePort']}/{proto}")
    return ", ".join(out)


def container_context(c: Mapping[str, Any], trunc: bool = True, now: float | None = None) -> dict:
    """The fields a ``ps --format`` template sees (strings, as docker's ContainerContext)."""
    names = [n.lstrip("/") for n in c.get("Names") or []]
    image = c.get("Image") or ""
    if trunc and image.startswith("sha256:"):
        image = short_id(image)
    command = c.get("Command") or ""
    if trunc:
        command = ellipsis(command, 20)
    created = parse_timestamp(c.get("Created"))
    return {
        "ID": short_id(c.get("Id", ""), trunc),
        "Names": ",".join(names),
        "Image": image,
        "Command": go_quote(command),
        "CreatedAt": go_time(created),
        "RunningFor": ago(created, now),
        "Status": c.get("Status") or "",
        "State": c.get("State") or "",
        "Ports": format_ports(c.get("Ports")),
        "Labels": format_labels(c.get("Labels")),
        "Size": "",
        "Mounts": "",
        "Networks": "",
        "LocalVolumes": "0",
    }


def format_containers(
    containers: Sequence[Mapping[str, Any]],
    fmt: str | None = None,
    quiet: bool = False,
    trunc: bool = True,
    now: float | None = None,
) -> str:
    """The whole ``ps`` output (without a trailing newline)."""
    ctxs = [container_context(c, trunc, now) for c in containers]
    if quiet:
        return "\n".join(c["ID"] for c in ctxs)
    return format_listing(ctxs, fmt, PS_HEADERS, PS_DEFAULT_TABLE)
