"""Exec endpoints: create, start (hijacked), resize, inspect."""

from __future__ import annotations

from hyperctl.httpconn import quote
from hyperctl.transport import Transport
from hyperctl.wire import HijackedConnection

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~5 ms a run
if TYPE_CHECKING:
    from typing import Any


class ExecEndpoints(Transport):
    """``/containers/{id}/exec`` and ``/exec/{id}/...``."""

    def exec_create(
        self,
        container: str,
        cmd: list[str],
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        tty: bool = False,
        environment: list[str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        console_size: tuple[int, int] | None = None,
    ) -> dict:
        """``POST /containers/{id}/exec``: ``{"Id": ...}``."""
        body: dict[str, Any] = {
            "AttachStdin": stdin,
            "AttachStdout": stdout,
            "AttachStderr": stderr,
            "Tty": tty,
            "Cmd": list(cmd),
        }
        if environment:
            body["Env"] = list(environment)
        if workdir:
            body["WorkingDir"] = workdir
        if user:
            body["User"] = user
        if console_size:
            body["ConsoleSize"] = list(console_size)
        return self._request("POST", f"/containers/{quote(container)}/exec", body=body)

    def exec_start(
        self,
        exec_id: str,
        detach: bool = False,
        tty: bool = False,
        console_size: tuple[int, int] | None = None,
    ) -> HijackedConnection | None:
        """``POST /exec/{id}/start``: the hijacked connection, or None when detached."""
        body: dict[str, Any] = {"Detach": detach, "Tty": tty}
        if console_size:
            body["ConsoleSize"] = list(console_size)
        if detach:
            self._request("POST", f"/exec/{quote(exec_id)}/start", body=body)
            return None
        return self._hijack(f"/exec/{quote(exec_id)}/start", body=body)

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        """``POST /exec/{id}/resize``."""
        self._request("POST", f"/exec/{quote(exec_id)}/resize", {"h": height, "w": width})

    def exec_inspect(self, exec_id: str) -> dict:
        """``GET /exec/{id}/json``."""
        return self._request("GET", f"/exec/{quote(exec_id)}/json")
