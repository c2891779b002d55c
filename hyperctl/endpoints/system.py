"""System endpoints: ping, version, info, events, disk usage, registry login."""

from __future__ import annotations

from collections.abc import Iterator

from hyperctl.transport import Transport

DEFAULT_REGISTRY = "https://index.docker.io/v1/"


def filters_param(filters: dict | None) -> str | None:
    """Docker's ``filters`` query parameter (JSON of ``{"key": ["value", ...]}``)."""
    if not filters:
        return None
    import json

    return json.dumps(filters)


class SystemEndpoints(Transport):
    """``/_ping``, ``/version``, ``/info``, ``/events``, ``/system/df``, ``/auth``."""

    def ping(self) -> str:
        """``GET /_ping``: "OK"."""
        return self._request("GET", "/_ping")

    def version(self) -> dict:
        """``GET /version``."""
        return self._request("GET", "/version")

    def info(self) -> dict:
        """``GET /info``."""
        return self._request("GET", "/info")

    def events(
        self,
        since: float | None = None,
        until: float | None = None,
        filters: dict | None = None,
    ) -> Iterator[dict]:
        """``GET /events``: events as they happen (ends at ``until`` when given)."""
        params = {
            "since": None if since is None else f"{since:.9f}",
            "until": None if until is None else f"{until:.9f}",
            "filters": filters_param(filters),
        }
        return self._stream_json("GET", "/events", params)

    def df(self) -> dict:
        """``GET /system/df``: images, containers, volumes and their sizes."""
        return self._request("GET", "/system/df", timeout=None)

    def login(self, username: str, password: str, registry: str | None = None) -> dict:
        """``POST /auth``: check and keep credentials for a registry."""
        body = {
            "username": username,
            "password": password,
            "serveraddress": registry or DEFAULT_REGISTRY,
        }
        return self._request("POST", "/auth", body=body)

    def logout(self, registry: str | None = None) -> dict:
        """``POST /auth/logout``: forget a registry's credentials."""
        body = {"serveraddress": registry or DEFAULT_REGISTRY}
        return self._request("POST", "/auth/logout", body=body)
