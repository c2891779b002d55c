"""``images``: one row per image and tag, and the default table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hyperctl.formatting import ago, format_listing, go_time, human_size, parse_timestamp, short_id

IMAGE_HEADERS = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
}


def _split_tag(ref: str) -> tuple[str, str]:
    slash, colon = ref.rfind("/"), ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, "<none>"


def image_contexts(
    images: Sequence[Mapping[str, Any]], trunc: bool = True, now: float | None = None
) -> list[dict]:
    """One row per (image, tag), docker images style."""
    rows = []
    for img in images:
        created = parse_timestamp(img.get("Created"))
        digests = {}
        for d in img.get("RepoDigests") or []:
            repo, _, dig = d.partition("@")
            digests.setdefault(repo, dig)
        base = {
            "ID": short_id(img.get("Id", ""), trunc) if trunc else img.get("Id", ""),
            "CreatedSince": ago(created, now),
            "CreatedAt": go_time(created),
            "Size": human_size(img.get("Size") or 0),
        }
        tags = [t for t in img.get("RepoTags") or [] if t != "<none>:<none>"]
        if not tags:
            if digests:
                for repo, dig in digests.items():
                    rows.append({**base, "Repository": repo, "Tag": "<none>", "Digest": dig})
            else:
                rows.append({**base, "Repository": "<none>", "Tag": "<none>", "Digest": "<none>"})
            continue
        for t in tags:
            repo, tag = _split_tag(t)
            rows.append(
                {**base, "Repository": repo, "Tag": tag, "Digest": digests.get(repo, "<none>")}
            )
    return rows


def format_images(
    images: Sequence[Mapping[str, Any]],
    fmt: str | None = None,
    quiet: bool = False,
    digests: bool = False,
    trunc: bool = True,
    now: float | None = None,
) -> str:
    """The whole ``images`` output (without a trailing newline)."""
    rows = image_contexts(images, trunc, now)
    if quiet:
        seen, out = set(), []
        for r in rows:
            if r["ID"] not in seen:
                seen.add(r["ID"])
                out.append(r["ID"])
        return "\n".join(out)
    cols = ["{{.Repository}}", "{{.Tag}}"]
    if digests:
        cols.append("{{.Digest}}")
    cols += ["{{.ID}}", "{{.CreatedSince}}", "{{.Size}}"]
    return format_listing(rows, fmt, IMAGE_HEADERS, "table " + "\t".join(cols))
