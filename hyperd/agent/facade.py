"""Typed facade over the agent client: one method per command (protocol v1 for now)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from . import protocol as p
from .client import AgentClient, AgentError, ProcessIO

__all__ = ["Agent", "AgentError", "Mount", "ProcessIO"]


@dataclass
class Mount:
    """One entry of NEWCONTAINER's mount list."""

    type: str
    source: str
    fstype: str
    target: str
    options: str = ""
    readonly: bool = False
    layer: str = ""
    populate: bool = False


class Agent:
    """The agent of one VM."""

    def __init__(self, client: AgentClient):
        self.client = client

    @property
    def connected(self) -> bool:
        return self.client.connected

    async def ping(self) -> None:
        await self.client.call(p.Code.PING)

    async def start_pod(self, hostname: str, dns: list[str], search: list[str]) -> None:
        await self.client.call(p.Code.STARTPOD, p.startpod(hostname, dns, search))

    async def create_container(
        self, cid: str, mounts: list[Mount], process: p.Process | None = None, read_only=False
    ) -> None:
        lower = next(m for m in mounts if m.layer == "lower")
        upper = next((m for m in mounts if m.layer == "upper"), None)
        payload = p.newcontainer(
            cid, lower.source, lower.fstype, upper.source if upper else "", process, read_only
        )
        await self.client.call(p.Code.NEWCONTAINER, payload)

    async def exec(self, cid: str, process: p.Process) -> None:
        await self.client.call(p.Code.EXECCMD, p.execcmd(cid, process))

    async def signal(self, cid: str, process_id: str, sig: int) -> None:
        await self.client.call(p.Code.SIGNALPROCESS, p.signalprocess(cid, process_id, sig))

    async def kill_container(self, cid: str, sig: int) -> None:
        await self.client.call(p.Code.KILLCONTAINER, p.killcontainer(cid, sig))

    async def winsize(self, cid: str, process_id: str, rows: int, cols: int) -> None:
        await self.client.call(p.Code.WINSIZE, p.winsize(cid, process_id, rows, cols))

    async def write_file(self, cid: str, path: str, data: bytes, mode: int | None = None) -> None:
        await self.client.call(p.Code.WRITEFILE, p.writefile_payload(cid, path, data, mode))

    async def read_file(self, cid: str, path: str) -> bytes:
        return await self.client.call(
            p.Code.READFILE, json.dumps({"container": cid, "path": path}).encode()
        )

    async def setup_interface(self, device, addresses, mtu=0, new_name="") -> None:
        await self.client.call(
            p.Code.SETUPINTERFACE, p.setupinterface(device, addresses, mtu, new_name)
        )

    async def delete_interface(self, device: str) -> None:
        """Flush a NIC's addresses and take it down (before it is unplugged)."""
        await self.client.call(p.Code.DELETEINTERFACE, {"device": device})

    async def setup_routes(self, routes: list[dict]) -> None:
        await self.client.call(p.Code.SETUPROUTE, p.setuproute(routes))

    async def destroy_pod(self) -> None:
        await self.client.call(p.Code.DESTROYPOD)

    def open_process(self, cid: str, pid: str, stdio: int, stderr: int = 0) -> ProcessIO:
        return self.client.open_process(cid, pid, stdio, stderr)

    def forget_process(self, io: ProcessIO) -> None:
        self.client.forget_process(io)

    async def write_stdin(self, seq: int, data: bytes) -> None:
        await self.client.write_stdin(seq, data)

    async def close_stdin(self, seq: int) -> None:
        await self.client.close_stdin(seq)
