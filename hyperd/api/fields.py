"""Typed reads of untrusted JSON, each error naming the field (``HostConfig.Memory``).

Docker clients send ``null`` for most fields they leave out, so null always reads as the
default. A present value of the wrong type is a 400 that names where it was.
"""

from __future__ import annotations

from hyperd.errors import InvalidArgument


class Fields:
    """A JSON object (or None) at ``path``, read field by field."""

    def __init__(self, obj, path: str = ""):
        if obj is not None and not isinstance(obj, dict):
            raise InvalidArgument(f"{path or 'request body'} must be a JSON object")
        self.obj = obj or {}
        self.path = path

    def name(self, key: str) -> str:
        """The dotted name of a field, for messages."""
        return f"{self.path}.{key}" if self.path else key

    def bad(self, key: str, what: str) -> InvalidArgument:
        """The 400 for a field that is not ``what``."""
        return InvalidArgument(f"{self.name(key)} must be {what}, not {self.obj[key]!r:.80}")

    def has(self, key: str) -> bool:
        """Is the field present and not null?"""
        return self.obj.get(key) is not None

    def sub(self, key: str) -> Fields:
        """A nested object."""
        return Fields(self.obj.get(key), self.name(key))

    def str(self, key: str, default: str = "") -> str:
        value = self.obj.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.bad(key, "a string")
        return value

    def bool(self, key: str, default: bool = False) -> bool:
        value = self.obj.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.bad(key, "a boolean")
        return value

    def int(self, key: str, default: int = 0, lo: int | None = 0, hi: int | None = None) -> int:
        value = self.obj.get(key)
        if value is None:
            return default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.bad(key, "an integer")
        if lo is not None and value < lo:
            raise InvalidArgument(f"{self.name(key)} must be at least {lo}, not {value}")
        if hi is not None and value > hi:
            raise InvalidArgument(f"{self.name(key)} must be at most {hi}, not {value}")
        return value

    def str_list(self, key: str) -> list[str]:
        value = self.obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.bad(key, "a list of strings")
        return list(value)

    def command(self, key: str) -> list[str] | None:
        """Cmd/Entrypoint: a list of strings or one string; None when not given."""
        value = self.obj.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return [value] if value else []
        return self.str_list(key)

    def str_map(self, key: str) -> dict[str, str]:
        value = self.obj.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.bad(key, "an object of strings")
        return dict(value)

    def keys(self, key: str) -> list[str]:
        """An object used as a set (``{"80/tcp": {}}``): its keys."""
        value = self.obj.get(key)
        if value is None:
            return []
        if not isinstance(value, dict):
            raise self.bad(key, "an object")
        return list(value)

    def object_list(self, key: str) -> list[Fields]:
        value = self.obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.bad(key, "a list of objects")
        return [Fields(item, f"{self.name(key)}[{i}]") for i, item in enumerate(value)]


def query_int(query, key: str, default: int | None = None, lo: int | None = None) -> int | None:
    """An integer query parameter (``t=10``); a 400 naming it when it is not one."""
    value = query.get(key)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidArgument(f"{key} must be an integer, not {value!r}") from None
    if lo is not None and number < lo:
        raise InvalidArgument(f"{key} must be at least {lo}, not {number}")
    return number


def query_bool(query, key: str, default: bool = False) -> bool:
    """A boolean query parameter: 1/true/yes (Docker's parsing), 0/false/no."""
    value = query.get(key)
    if value is None or value == "":
        return default
    low = value.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise InvalidArgument(f"{key} must be a boolean, not {value!r}")
