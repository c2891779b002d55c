"""Network endpoints: ``/networks`` (create, list, inspect, remove, connect, disconnect,
prune)."""

from __future__ import annotations

from hyperctl.endpoints.system import filters_param
from hyperctl.httpconn import quote
from hyperctl.transport import Transport


def _path(net: str, action: str = "") -> str:
    return f"/networks/{quote(net)}" + (f"/{action}" if action else "")


class NetworkEndpoints(Transport):
    """``/networks`` and ``/networks/{id}/...``."""

    def create_network(self, body: dict) -> dict:
        """``POST /networks/create``: ``{Id, Warning}``."""
        return self._request("POST", "/networks/create", body=body)

    def networks(self, filters: dict | None = None) -> list[dict]:
        """``GET /networks``."""
        return self._request("GET", "/networks", {"filters": filters_param(filters)}) or []

    def inspect_network(self, net: str) -> dict:
        """``GET /networks/{id}``."""
        return self._request("GET", _path(net))

    def remove_network(self, net: str) -> None:
        """``DELETE /networks/{id}`` (waits for containers that just stopped)."""
        self._request("DELETE", _path(net), timeout=None)

    def connect_network(
        self, net: str, container: str, aliases=(), ipv4: str = "", links=()
    ) -> None:
        """``POST /networks/{id}/connect`` (a running container gets a NIC at once)."""
        endpoint: dict = {"Aliases": list(aliases), "Links": list(links)}
        if ipv4:
            endpoint["IPAMConfig"] = {"IPv4Address": ipv4}
        body = {"Container": container, "EndpointConfig": endpoint}
        self._request("POST", _path(net, "connect"), body=body, timeout=None)

    def disconnect_network(self, net: str, container: str, force: bool = False) -> None:
        """``POST /networks/{id}/disconnect``."""
        body = {"Container": container, "Force": force}
        self._request("POST", _path(net, "disconnect"), body=body, timeout=None)

    def prune_networks(self, filters: dict | None = None) -> dict:
        """``POST /networks/prune``: ``{NetworksDeleted}``."""
        return self._request("POST", "/networks/prune", {"filters": filters_param(filters)}) or {}
