"""Docker's image filters, for ``GET /images/json`` and ``POST /images/prune``.

``reference`` (a glob on ``name:tag`` or the name, as moby's FamiliarMatch; ``*`` stays within
a path component), ``dangling`` (no tag), ``label`` (``key``, ``key=value``; every one must
match; prune also takes ``label!=``), ``before``/``since`` (an image: created before/after
it) and ``until`` (prune: created before a time). Filter values come decoded as lists of
strings (hyperd/api/decode.filters).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from fnmatch import fnmatchcase

from hyperd.errors import InvalidArgument
from hyperd.images.reference import parse_reference
from hyperd.images.store import ImageRecord

LIST_FILTERS = {"before", "dangling", "label", "reference", "since"}
PRUNE_FILTERS = {"dangling", "label", "label!", "until"}
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$")
_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


class Matcher:
    """All the filters as one predicate on (record, its inspect data)."""

    def __init__(self, filters: dict[str, list[str]], created_of: Callable[[str], float]):
        """``created_of(ref)``: the creation time of the image ``ref`` names (before/since)."""
        f = {k: v for k, v in filters.items() if v}
        self.dangling = dangling(f["dangling"]) if "dangling" in f else None
        self.references = f.get("reference", [])
        self.labels = f.get("label", [])
        self.not_labels = f.get("label!", [])
        self.after = min(map(created_of, f["since"])) if "since" in f else None
        self.before = min(map(created_of, f["before"])) if "before" in f else None
        if "until" in f:
            limit = min(map(until, f["until"]))
            self.before = limit if self.before is None else min(self.before, limit)

    def __call__(self, rec: ImageRecord, data: dict) -> bool:
        labels = (data.get("Config") or {}).get("Labels") or {}
        t = created(data)
        return (
            (self.dangling is None or (not rec.tags) == self.dangling)
            and (not self.references or bool(self.tags(rec)))
            and all(_label_match(v, labels) for v in self.labels)
            and not any(_label_match(v, labels) for v in self.not_labels)
            and (self.after is None or t > self.after)
            and (self.before is None or t < self.before)
        )

    def tags(self, rec: ImageRecord) -> list[str]:
        """The image's tags a reference filter selects (all of them without one)."""
        if not self.references:
            return list(rec.tags)
        return [t for t in rec.tags if any(_ref_match(p, t) for p in self.references)]


def dangling(values: list[str]) -> bool:
    """The ``dangling`` filter's one boolean."""
    wanted = {v.lower() for v in values}
    if not wanted <= {"true", "false", "1", "0"} or len(wanted) > 1:
        raise InvalidArgument(f"Invalid filter 'dangling={','.join(values)}'")
    return wanted.pop() in ("true", "1")


def _ref_match(pattern: str, tag: str) -> bool:
    ref = parse_reference(tag)
    return _path_match(pattern, ref.familiar()) or _path_match(pattern, ref.familiar_name())


def _path_match(pattern: str, name: str) -> bool:
    """Go's path.Match: shell globs, with no wildcard matching a '/'."""
    parts, names = pattern.split("/"), name.split("/")
    return len(parts) == len(names) and all(map(fnmatchcase, names, parts))


def _label_match(value: str, labels: dict) -> bool:
    key, sep, want = value.partition("=")
    return key in labels and (not sep or labels[key] == want)


def created(data: dict) -> float:
    """An image's creation time (seconds since the epoch; 0 when it has none)."""
    text = data.get("Created") or ""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def until(value: str) -> float:
    """Docker's ``until``: unix seconds, an RFC 3339 time, or a duration before now."""
    try:
        return float(value)
    except ValueError:
        pass
    if _DURATION.match(value):
        spans = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", value)
        return time.time() - sum(float(n) * _UNITS[u] for n, u in spans)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidArgument(f"until: {value!r} is neither a time nor a duration") from None
