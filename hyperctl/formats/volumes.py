"""``volume ls``: the fields a volume row shows and its default table."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from hyperctl.formatting import format_labels, format_listing, human_size

VOLUME_HEADERS = {
    "Name": "VOLUME NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS",
    "Links": "LINKS",
    "Size": "SIZE",
    "Group": "GROUP",
    "Availability": "AVAILABILITY",
    "Status": "STATUS",
}
VOLUME_DEFAULT_TABLE = "table {{.Driver}}\t{{.Name}}"
NOT_AVAILABLE = "N/A"


def volume_context(v: Mapping[str, Any]) -> dict:
    """The fields of one row, as the docker CLI's volume formatter names them."""
    usage = v.get("UsageData") or {}
    size = usage.get("Size", -1)
    links = usage.get("RefCount", -1)
    return {
        "Name": v.get("Name") or "",
        "Driver": v.get("Driver") or "",
        "Scope": v.get("Scope") or "",
        "Mountpoint": v.get("Mountpoint") or "",
        "Labels": format_labels(v.get("Labels")),
        "Links": str(links) if links >= 0 else NOT_AVAILABLE,
        "Size": human_size(size, 4) if size >= 0 else NOT_AVAILABLE,
        "Group": NOT_AVAILABLE,
        "Availability": NOT_AVAILABLE,
        "Status": NOT_AVAILABLE,
    }


def natural_key(name: str) -> list:
    """Docker's natural sort order: runs of digits compare as numbers (``v2`` < ``v10``)."""
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", name)
        if part
    ]


def _by_name(
    items: Sequence[Mapping[str, Any]], fmt, quiet: bool, context, headers, default_table
) -> str:
    """A listing of named objects in Docker's natural name order: names alone with
    ``quiet``, else the rows ``context`` makes, as ``fmt`` asks."""
    items = sorted(items, key=lambda v: natural_key(v.get("Name") or ""))
    if quiet:
        return "\n".join(v.get("Name") or "" for v in items)
    return format_listing([context(v) for v in items], fmt, headers, default_table)


def format_volumes(
    volumes: Sequence[Mapping[str, Any]], fmt: str | None = None, quiet: bool = False
) -> str:
    """The whole ``volume ls`` output (without a trailing newline), in name order."""
    return _by_name(volumes, fmt, quiet, volume_context, VOLUME_HEADERS, VOLUME_DEFAULT_TABLE)


SNAPSHOT_HEADERS = {"Name": "SNAPSHOT", "Volume": "VOLUME", "CreatedAt": "CREATED", "Size": "SIZE"}
SNAPSHOT_DEFAULT_TABLE = "table {{.Name}}\t{{.Volume}}\t{{.CreatedAt}}\t{{.Size}}"


def snapshot_context(s: Mapping[str, Any]) -> dict:
    """The fields of one ``volume snapshots`` row; the size is the volume's when it was taken."""
    return {
        "Name": s.get("Name") or "",
        "Volume": s.get("Volume") or "",
        "CreatedAt": s.get("CreatedAt") or "",
        "Size": human_size(int(s.get("Size") or 0), 4),
    }


def format_snapshots(
    snapshots: Sequence[Mapping[str, Any]], fmt: str | None = None, quiet: bool = False
) -> str:
    """``volume snapshots``: one row a snapshot, in name order."""
    return _by_name(
        snapshots, fmt, quiet, snapshot_context, SNAPSHOT_HEADERS, SNAPSHOT_DEFAULT_TABLE
    )
