"""Container endpoints: lifecycle, wait, logs, attach, top, stats, update, prune."""

from __future__ import annotations

from collections.abc import Iterator

from hyperapi.errors import HyperError
from hyperctl.endpoints.system import filters_param
from hyperctl.httpconn import Connection, quote
from hyperctl.transport import Transport, bool_param
from hyperctl.wire import STDOUT, HijackedConnection, demux, read_body

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~5 ms a run
if TYPE_CHECKING:
    from typing import Any


def _path(container: str, action: str = "") -> str:
    return f"/containers/{quote(container)}" + (f"/{action}" if action else "")


class PendingWait:
    """A wait the daemon has registered: its headers have arrived, its body (the exit
    status) comes when the condition is met."""

    def __init__(self, transport: Transport, conn: Connection, resp):
        self._transport = transport
        self._conn = conn
        self._resp = resp

    def result(self, timeout: float | None = None) -> dict:
        """``{"StatusCode": N, "Error": {"Message"} | None}``, reading the body."""
        if timeout is not None and self._conn.sock is not None:
            self._conn.sock.settimeout(timeout)
        return self._transport._read(self._conn, self._resp) or {}

    def close(self) -> None:
        """Give up the wait."""
        self._conn.close()


class ContainerEndpoints(Transport):
    """``/containers/...``."""

    def create_container(self, config: dict, name: str | None = None) -> dict:
        """``POST /containers/create``: ``{"Id", "Warnings"}``."""
        return self._request("POST", "/containers/create", {"name": name}, body=config)

    def containers(
        self, all: bool = False, filters: dict | None = None, limit: int | None = None
    ) -> list[dict]:
        """``GET /containers/json``."""
        params = {"all": bool_param(all), "filters": filters_param(filters), "limit": limit}
        return self._request("GET", "/containers/json", params) or []

    def inspect_container(self, container: str) -> dict:
        """``GET /containers/{id}/json``."""
        return self._request("GET", _path(container, "json"))

    def start(self, container: str) -> None:
        """``POST /containers/{id}/start``; a 304 (already running) is not an error."""
        self._request("POST", _path(container, "start"), timeout=None)

    def stop(self, container: str, timeout: int | None = None) -> None:
        """``POST /containers/{id}/stop``."""
        t = None if timeout is None else int(timeout)
        self._request("POST", _path(container, "stop"), {"t": t}, timeout=None)

    def restart(self, container: str, timeout: int | None = None) -> None:
        """``POST /containers/{id}/restart``."""
        t = None if timeout is None else int(timeout)
        self._request("POST", _path(container, "restart"), {"t": t}, timeout=None)

    def kill(self, container: str, signal: str | int | None = None) -> None:
        """``POST /containers/{id}/kill``."""
        params = {"signal": None if signal is None else str(signal)}
        self._request("POST", _path(container, "kill"), params)

    def pause(self, container: str) -> None:
        """``POST /containers/{id}/pause``: suspend the container's VM."""
        self._request("POST", _path(container, "pause"), timeout=None)

    def unpause(self, container: str) -> None:
        """``POST /containers/{id}/unpause``."""
        self._request("POST", _path(container, "unpause"), timeout=None)

    def rename(self, container: str, name: str) -> None:
        """``POST /containers/{id}/rename``."""
        self._request("POST", _path(container, "rename"), {"name": name})

    def update_container(self, container: str, update: dict[str, Any]) -> dict:
        """``POST /containers/{id}/update`` with Docker's body (RestartPolicy, Memory,
        NanoCpus, CpuShares); ``{"Warnings": [...]}``."""
        return self._request("POST", _path(container, "update"), body=update, timeout=None)

    def remove_container(self, container: str, force: bool = False, v: bool = False) -> None:
        """``DELETE /containers/{id}``."""
        params = {"force": bool_param(force), "v": bool_param(v)}
        self._request("DELETE", _path(container), params, timeout=None)

    def prune_containers(self, filters: dict | None = None) -> dict:
        """``POST /containers/prune``: ``{"ContainersDeleted", "SpaceReclaimed"}``."""
        params = {"filters": filters_param(filters)}
        return self._request("POST", "/containers/prune", params, timeout=None)

    def wait_request(self, container: str, condition: str | None = None) -> PendingWait:
        """``POST /containers/{id}/wait``, returning once the daemon has registered the wait
        (its headers arrive at once); ``.result()`` reads the exit status later."""
        params = {"condition": condition}
        conn, resp = self._send("POST", _path(container, "wait"), params, timeout=None)
        return PendingWait(self, conn, resp)

    def wait(self, container: str, condition: str | None = None) -> dict:
        """Block until the condition; ``{"StatusCode": N, "Error": ...}``."""
        return self.wait_request(container, condition).result()

    def top(self, container: str, ps_args: str | None = None) -> dict:
        """``GET /containers/{id}/top``: ``{"Titles": [...], "Processes": [[...]]}``."""
        return self._request("GET", _path(container, "top"), {"ps_args": ps_args or None})

    def stats(self, container: str, stream: bool = True) -> Iterator[dict] | dict:
        """``GET /containers/{id}/stats``: samples every second, or one when not streamed."""
        params = {"stream": bool_param(stream)}
        if stream:
            return self._stream_json("GET", _path(container, "stats"), params)
        return self._request("GET", _path(container, "stats"), params, timeout=None)

    def logs(
        self,
        container: str,
        stdout: bool = True,
        stderr: bool = True,
        follow: bool = False,
        timestamps: bool = False,
        tail: int | str = "all",
        since: float | None = None,
        until: float | None = None,
        tty: bool | None = None,
    ) -> Iterator[tuple[int, bytes]]:
        """``GET /containers/{id}/logs``: (stream, bytes) pairs (always stream 1 for a tty
        container)."""
        params = {
            "stdout": bool_param(stdout),
            "stderr": bool_param(stderr),
            "follow": bool_param(follow),
            "timestamps": bool_param(timestamps),
            "tail": str(tail),
            "since": None if since is None else f"{since:.9f}",
            "until": None if until is None else f"{until:.9f}",
        }
        conn, resp = self._send("GET", _path(container, "logs"), params, timeout=None)
        if tty is None:
            tty = self._is_tty(container, resp.getheader("Content-Type", "") or "")
        chunks = read_body(conn, resp)
        return ((STDOUT, c) for c in chunks) if tty else demux(chunks)

    def _is_tty(self, container: str, content_type: str) -> bool:
        if "raw-stream" in content_type:
            return True
        if "multiplexed-stream" in content_type:
            return False
        try:
            return bool(self.inspect_container(container)["Config"].get("Tty"))
        except (HyperError, KeyError, TypeError):
            return False

    def attach_socket(
        self,
        container: str,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        stream: bool = True,
        logs: bool = False,
    ) -> HijackedConnection:
        """``POST /containers/{id}/attach``: the hijacked connection."""
        params = {
            "stream": bool_param(stream),
            "stdin": bool_param(stdin),
            "stdout": bool_param(stdout),
            "stderr": bool_param(stderr),
            "logs": bool_param(logs),
        }
        return self._hijack(_path(container, "attach"), params)

    def resize(self, container: str, height: int, width: int) -> None:
        """``POST /containers/{id}/resize``: the terminal size of the main process."""
        self._request("POST", _path(container, "resize"), {"h": height, "w": width})
