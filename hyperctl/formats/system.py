"""``system df`` (the summary and its verbose sections) and ``events`` lines."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from hyperctl.formats.containers import container_context
from hyperctl.formats.images import image_contexts
from hyperctl.formatting import format_listing, human_size, render_template_table

ACTIVE_STATES = ("running", "paused", "restarting")

# --- system df ----------------------------------------------------------------------------

DF_HEADERS = {
    "Type": "TYPE",
    "TotalCount": "TOTAL",
    "Active": "ACTIVE",
    "Size": "SIZE",
    "Reclaimable": "RECLAIMABLE",
}
DF_DEFAULT_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"


def _reclaimable(reclaimable: int, total: int) -> str:
    size = human_size(reclaimable, 4)
    return f"{size} ({reclaimable * 100 // total}%)" if total > 0 else size


def _df_row(kind: str, count: int, active: int, total: int, reclaimable: int) -> dict:
    return {
        "Type": kind,
        "TotalCount": str(count),
        "Active": str(active),
        "Size": human_size(total, 4),
        "Reclaimable": _reclaimable(reclaimable, total),
    }


def df_rows(df: Mapping[str, Any]) -> list[dict]:
    """Docker's four summary rows: images, containers, local volumes, build cache."""
    images = df.get("Images") or []
    used = sum(
        i.get("Size", 0) - i.get("SharedSize", 0)
        for i in images
        if i.get("Containers") and i.get("Size", -1) != -1 and i.get("SharedSize", -1) != -1
    )
    layers = int(df.get("LayersSize") or 0)
    containers = df.get("Containers") or []
    active = [c for c in containers if c.get("State") in ACTIVE_STATES]
    c_total = sum(c.get("SizeRw") or 0 for c in containers)
    c_active = sum(c.get("SizeRw") or 0 for c in active)
    volumes = [v.get("UsageData") or {} for v in df.get("Volumes") or []]
    sized = [u for u in volumes if u.get("Size", -1) != -1]
    v_total = sum(u["Size"] for u in sized)
    v_free = sum(u["Size"] for u in sized if not u.get("RefCount"))
    cache = df.get("BuildCache") or []
    cache_size = sum(b.get("Size") or 0 for b in cache if not b.get("Shared"))
    cache_free = sum(
        b.get("Size") or 0 for b in cache if not b.get("InUse") and not b.get("Shared")
    )
    return [
        _df_row("Images", len(images), sum(1 for i in images if i.get("Containers")), layers,
                layers - used),
        _df_row("Containers", len(containers), len(active), c_total, c_total - c_active),
        _df_row("Local Volumes", len(volumes), sum(1 for u in volumes if u.get("RefCount")),
                v_total, v_free),
        _df_row("Build Cache", len(cache), sum(1 for b in cache if b.get("InUse")),
                cache_size, cache_free),
    ]  # fmt: skip


def format_df(df: Mapping[str, Any], fmt: str | None = None) -> str:
    """``system df``: the summary table, json lines or a template."""
    return format_listing(df_rows(df), fmt, DF_HEADERS, DF_DEFAULT_TABLE)


def format_df_verbose(df: Mapping[str, Any], now: float | None = None) -> str:
    """``system df -v``: a section for images, containers, local volumes, build cache."""
    images = []
    for img in df.get("Images") or []:
        shared = img.get("SharedSize", 0)
        extra = {
            "SharedSize": "N/A" if shared == -1 else human_size(shared),
            "UniqueSize": "N/A" if shared == -1 else human_size(img.get("Size", 0) - shared),
            "Containers": str(img.get("Containers", 0)),
        }
        images += [{**row, **extra} for row in image_contexts([img], now=now)]
    containers = []
    for c in df.get("Containers") or []:
        row = container_context(c, now=now)
        row["Size"] = human_size(c.get("SizeRw") or 0)
        row["LocalVolumes"] = str(
            sum(1 for m in c.get("Mounts") or [] if m.get("Type") == "volume")
        )
        containers.append(row)
    volumes = [
        {
            "Name": v.get("Name", ""),
            "Links": str((v.get("UsageData") or {}).get("RefCount", 0)),
            "Size": human_size((v.get("UsageData") or {}).get("Size", 0)),
        }
        for v in df.get("Volumes") or []
    ]
    cache_size = sum(b.get("Size") or 0 for b in df.get("BuildCache") or [])
    sections = [
        "Images space usage:\n",
        _table("{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
               "\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}", images),
        "\nContainers space usage:\n",
        _table("{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}"
               "\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}", containers),
        "\nLocal Volumes space usage:\n",
        _table("{{.Name}}\t{{.Links}}\t{{.Size}}", volumes),
        f"\nBuild cache usage: {human_size(cache_size, 4)}\n",
        "CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED",
    ]  # fmt: skip
    return "\n".join(sections)


_VERBOSE_HEADERS = {
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "ID": "IMAGE ID",
    "CreatedSince": "CREATED",
    "Size": "SIZE",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
    "Containers": "CONTAINERS",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "LocalVolumes": "LOCAL VOLUMES",
    "RunningFor": "CREATED",
    "Status": "STATUS",
    "Names": "NAMES",
    "Name": "VOLUME NAME",
    "Links": "LINKS",
}


def _table(columns: str, rows: Sequence[Mapping[str, Any]]) -> str:
    headers = dict(_VERBOSE_HEADERS)
    if "{{.Image}}" in columns:
        headers["ID"] = "CONTAINER ID"
    return render_template_table("table " + columns, rows, headers)


# --- events -------------------------------------------------------------------------------


def rfc3339_nano(time_nano: int) -> str:
    """Go's RFC3339NanoFixed in local time (``2024-01-02T15:04:05.000000000+01:00``)."""
    seconds, nanos = divmod(int(time_nano), 1_000_000_000)
    local = time.localtime(seconds)
    offset = local.tm_gmtoff or 0
    zone = "Z" if offset == 0 else f"{'+' if offset > 0 else '-'}{abs(offset) // 3600:02d}:"
    if offset:
        zone += f"{abs(offset) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{nanos:09d}{zone}"


def event_line(event: Mapping[str, Any]) -> str:
    """Docker's default ``events`` line: time, type, action, actor, (attributes)."""
    actor = event.get("Actor") or {}
    parts = []
    if event.get("timeNano"):
        parts.append(rfc3339_nano(event["timeNano"]) + " ")
    parts.append(f"{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}")
    attrs = actor.get("Attributes") or {}
    if attrs:
        parts.append(" (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")")
    return "".join(parts)


def event_context(event: Mapping[str, Any]) -> dict:
    """The fields an ``events --format`` template sees (Go's events.Message names)."""
    return {
        "Status": event.get("status", ""),
        "ID": event.get("id", ""),
        "From": event.get("from", ""),
        "Type": event.get("Type", ""),
        "Action": event.get("Action", ""),
        "Actor": event.get("Actor") or {"ID": "", "Attributes": {}},
        "Scope": event.get("scope", ""),
        "Time": event.get("time", 0),
        "TimeNano": event.get("timeNano", 0),
    }
