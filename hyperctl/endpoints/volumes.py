"""Volume endpoints: create, list, inspect, remove, prune, and hyper's volume snapshots."""

from __future__ import annotations

from hyperctl.endpoints.system import filters_param
from hyperctl.httpconn import quote
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

    def snapshot_volume(self, volume: str, name: str | None = None) -> dict:
        """``POST /volumes/{volume}/snapshot?name=``: the snapshot taken (a hyper extension)."""
        path = f"/volumes/{quote(volume, safe='')}/snapshot"
        return self._request("POST", path, {"name": name or None}, timeout=None)

    def snapshots(self, volume: str | None = None) -> list:
        """``GET /snapshots?volume=``: the snapshots, of one volume or of all."""
        return self._request("GET", "/snapshots", {"volume": volume or None}) or []

    def remove_snapshot(self, name: str) -> None:
        """``DELETE /snapshots/{name}``."""
        self._request("DELETE", f"/snapshots/{quote(name, safe='')}", timeout=None)
