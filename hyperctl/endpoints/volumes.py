"""Volume endpoints: create, list, inspect, remove, prune."""

from __future__ import annotations

from urllib.parse import quote

from hyperctl.endpoints.system import filters_param
from hyperctl.transport import Transport, bool_param


class VolumeEndpoints(Transport):
    """``/volumes/...``."""

    def create_volume(
        self,
        name: str | None = None,
        driver: str | None = None,
        driver_opts: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict:
        """``POST /volumes/create``: the volume (an existing name gives the existing one)."""
        body = {
            "Name": name or "",
            "Driver": driver or "local",
            "DriverOpts": driver_opts or {},
            "Labels": labels or {},
        }
        return self._request("POST", "/volumes/create", body=body, timeout=None)

    def volumes(self, filters: dict | None = None) -> dict:
        """``GET /volumes``: ``{"Volumes": [...], "Warnings": [...]}``."""
        return self._request("GET", "/volumes", {"filters": filters_param(filters)}) or {}

    def inspect_volume(self, name: str) -> dict:
        """``GET /volumes/{name}``."""
        return self._request("GET", f"/volumes/{quote(name, safe='')}")

    def remove_volume(self, name: str, force: bool = False) -> None:
        """``DELETE /volumes/{name}``; with ``force`` a missing volume is no error."""
        params = {"force": bool_param(force)}
        self._request("DELETE", f"/volumes/{quote(name, safe='')}", params, timeout=None)

    def prune_volumes(self, filters: dict | None = None) -> dict:
        """``POST /volumes/prune``: ``{"VolumesDeleted", "SpaceReclaimed"}``."""
        params = {"filters": filters_param(filters)}
        return self._request("POST", "/volumes/prune", params, timeout=None)
