"""Typed facade of the in-guest agent: one async method per hyperstart command.

The daemon talks to a guest through ``Agent``; the wire codes and payloads stay in
``protocol`` and ``AgentClient``. Every method raises AgentError with the guest's
message (and exit code / errno where the guest gives them), AgentTimeout when the
guest does not answer within ``timeout`` seconds (by default the client's
``default_timeout``), AgentUnresponsive at once while an earlier call went unanswered.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import AsyncIterable, AsyncIterator

from . import protocol as p
from .client import AgentClient, AgentError, AgentTimeout, ProcessIO, Transfer


class Agent:
    """The agent of one VM, over a connected AgentClient."""

    def __init__(self, client: AgentClient):
        self.client = client
        self._jobs = itertools.count(1)

    @property
    def connected(self) -> bool:
        """True until a channel to the guest closes."""
        return self.client.connected

    def _answer(self, what: str, answer: bytes, build):
        """``build(obj)`` of a JSON answer; a malformed one fences the guest."""
        try:
            return build(json.loads(answer))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            self.client.fence(f"malformed answer to {what}: {answer[:80]!r}")
            raise AgentError(f"the agent sent a malformed answer to {what}") from exc

    # -- pod and guest ------------------------------------------------------------------

    async def version(self, *, timeout: float | None = None) -> int:
        """The protocol version the agent speaks."""
        answer = await self.client.call(p.Code.GETVERSION, timeout=timeout)
        return self._answer("GETVERSION", answer or b"{}", lambda obj: int(obj.get("version", 0)))

    async def ping(self, *, timeout: float | None = None) -> None:
        """Check that the agent answers."""
        await self.client.call(p.Code.PING, timeout=timeout)

    async def start_pod(
        self,
        hostname: str,
        dns: list[str] | None = None,
        search: list[str] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Set the pod's hostname and DNS settings (STARTPOD), and the guest's wall clock
        and a fresh CRNG seed from the host (a guest restored from a template has stale ones)."""
        payload = p.startpod(hostname, dns, search, time_ns=time.time_ns(), seed=os.urandom(32))
        await self.client.call(p.Code.STARTPOD, payload, timeout)

    async def destroy_pod(self, *, timeout: float | None = None) -> None:
        """Kill everything, sync and power the guest off (DESTROYPOD)."""
        await self.client.call(p.Code.DESTROYPOD, timeout=timeout)

    async def online_cpu_mem(self, *, timeout: float | None = None) -> None:
        """Bring hot-plugged CPUs and memory online."""
        await self.client.call(p.Code.ONLINECPUMEM, timeout=timeout)

    async def setup_interface(
        self,
        device: str,
        addresses: list[tuple[str, int]],
        mtu: int = 0,
        new_name: str = "",
        *,
        timeout: float | None = None,
    ) -> None:
        """Address and bring up a NIC (by name or MAC)."""
        payload = p.setupinterface(device, addresses, mtu, new_name)
        await self.client.call(p.Code.SETUPINTERFACE, payload, timeout)

    async def delete_interface(self, device: str, *, timeout: float | None = None) -> None:
        """Flush a NIC's addresses and bring it down."""
        await self.client.call(p.Code.DELETEINTERFACE, {"device": device}, timeout)

    async def setup_routes(self, routes: list[dict], *, timeout: float | None = None) -> None:
        """Add routes ({dest, gateway?, device} each)."""
        await self.client.call(p.Code.SETUPROUTE, p.setuproute(routes), timeout)

    async def sync(self, cid: str | None = None, *, timeout: float | None = None) -> None:
        """Flush the guest's filesystems (or only those of container cid) to disk."""
        await self.client.call(p.Code.SYNC, p.sync(cid), timeout)

    # -- containers and processes --------------------------------------------------------

    async def create_container(
        self,
        cid: str,
        mounts: list[p.Mount],
        process: p.Process | None = None,
        read_only: bool = False,
        sysctl: dict[str, str] | None = None,
        privileged: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        """Mount a container and start its main process (NEWCONTAINER): PID 1 of the
        container's namespaces (without one, a holder of the agent's is)."""
        payload = p.newcontainer(cid, mounts, process, read_only, sysctl, privileged)
        await self.client.call(p.Code.NEWCONTAINER, payload, timeout)

    async def remove_container(self, cid: str, *, timeout: float | None = None) -> None:
        """Kill what is left of a container, unmount and forget it."""
        await self.client.call(p.Code.REMOVECONTAINER, {"container": cid}, timeout)

    async def exec(self, cid: str, process: p.Process, *, timeout: float | None = None) -> None:
        """Start a process in a container; returns once its program has been exec'd."""
        await self.client.call(p.Code.EXECCMD, p.execcmd(cid, process), timeout)

    async def signal(
        self, cid: str, process_id: str, sig: int, *, timeout: float | None = None
    ) -> None:
        """Send a signal to one process."""
        await self.client.call(p.Code.SIGNALPROCESS, p.signalprocess(cid, process_id, sig), timeout)

    async def kill_container(self, cid: str, sig: int, *, timeout: float | None = None) -> None:
        """Send a signal to a container's main process."""
        await self.client.call(p.Code.KILLCONTAINER, p.killcontainer(cid, sig), timeout)

    async def winsize(
        self, cid: str, process_id: str, rows: int, cols: int, *, timeout: float | None = None
    ) -> None:
        """Resize a process's terminal."""
        await self.client.call(p.Code.WINSIZE, p.winsize(cid, process_id, rows, cols), timeout)

    async def freeze(self, cid: str, frozen: bool, *, timeout: float | None = None) -> None:
        """Stop (SIGSTOP) or continue (SIGCONT) every process of a container."""
        payload = {"container": cid, "frozen": frozen}
        await self.client.call(p.Code.FREEZE, payload, timeout)

    async def processes(self, cid: str, *, timeout: float | None = None) -> list[p.ProcessInfo]:
        """The processes of a container (`docker top`)."""
        answer = await self.client.call(p.Code.PS, p.ps(cid), timeout)
        return self._answer(
            "PS", answer, lambda obj: [p.ProcessInfo.from_json(x) for x in obj["processes"]]
        )

    # -- process I/O (registration stays in the client) ------------------------------------

    def new_seq(self) -> int:
        """A stream seq no process of this VM uses."""
        return self.client.new_seq()

    def open_process(self, cid: str, process_id: str, stdio: int, stderr: int = 0) -> ProcessIO:
        """Register a process's streams and exit before the command that starts it."""
        return self.client.open_process(cid, process_id, stdio, stderr)

    def forget_process(self, io: ProcessIO) -> None:
        """Drop a process's registration (its streams end)."""
        self.client.forget_process(io)

    async def write_stdin(self, seq: int, data: bytes) -> None:
        """Send stdin data (waits while the guest is not taking it)."""
        await self.client.write_stdin(seq, data)

    async def close_stdin(self, seq: int) -> None:
        """Send EOF on a process's stdin."""
        await self.client.close_stdin(seq)

    # -- files ---------------------------------------------------------------------------

    async def write_file(
        self,
        cid: str,
        path: str,
        data: bytes,
        mode: int | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Write a small file in a container ("" for the guest's own root)."""
        payload = p.writefile_payload(cid, path, data, mode)
        await self.client.call(p.Code.WRITEFILE, payload, timeout)

    async def read_file(self, cid: str, path: str, *, timeout: float | None = None) -> bytes:
        """Read a small file of a container (at most one control frame)."""
        return await self.client.call(p.Code.READFILE, {"container": cid, "path": path}, timeout)

    async def stat_path(self, cid: str, path: str, *, timeout: float | None = None) -> p.PathStat:
        """lstat of a path in a container; a missing one raises AgentError with errno 2."""
        answer = await self.client.call(p.Code.STATPATH, p.statpath(cid, path), timeout)
        return self._answer("STATPATH", answer, p.PathStat.from_json)

    async def archive_out(
        self, cid: str, path: str, changes: bool = False, *, timeout: float | None = None
    ) -> tuple[p.PathStat, AsyncIterator[bytes]]:
        """A tar of path in a container (or, with changes, its layer of changes).

        Returns the path's stat and the archive's chunks: read them to the end or
        ``aclose()`` the iterator (the guest's frames are dropped after that). It
        raises AgentError at its end when the guest reported a failure, and
        AgentTimeout when no data came for ``timeout`` seconds.
        """
        job, seq = f"archive-out-{next(self._jobs)}", self.client.new_seq()
        timeout = timeout or self.client.default_timeout
        xfer = self.client.open_transfer(cid, job, seq, outgoing=True)
        try:
            answer = await self.client.call(
                p.Code.ARCHIVEOUT, p.archiveout(cid, job, path, seq, changes), timeout
            )
        except BaseException:
            self.client.forget_transfer(xfer)
            raise
        try:
            stat = self._answer("ARCHIVEOUT", answer, p.PathStat.from_json)
        except AgentError:
            self.client.forget_transfer(xfer)
            raise
        return stat, self._receive(xfer, timeout)

    async def _receive(self, xfer: Transfer, timeout: float) -> AsyncIterator[bytes]:
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(xfer.stream.get(), timeout)
                except TimeoutError:
                    raise AgentTimeout(
                        f"no archive data from the agent for {timeout:g} s"
                    ) from None
                if chunk is None:
                    break
                yield chunk
            _raise_failure(await _finished(xfer, timeout))
        finally:
            self.client.forget_transfer(xfer)

    async def archive_in(
        self,
        cid: str,
        path: str,
        chunks: AsyncIterable[bytes],
        no_overwrite_dir_non_dir: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        """Extract a tar (given as chunks) under the directory path of a container.

        Stops sending at the guest's first error, which raises AgentError;
        AgentTimeout when the guest takes no data for ``timeout`` seconds.
        """
        job, seq = f"archive-in-{next(self._jobs)}", self.client.new_seq()
        timeout = timeout or self.client.default_timeout
        xfer = self.client.open_transfer(cid, job, seq, outgoing=False)
        try:
            payload = p.archivein(cid, job, path, seq, no_overwrite_dir_non_dir)
            await self.client.call(p.Code.ARCHIVEIN, payload, timeout)
            async for chunk in chunks:
                if xfer.finished.done():
                    break
                await self._send(self.client.write_stdin(seq, chunk), timeout)
            if not xfer.finished.done():
                await self._send(self.client.close_stdin(seq), timeout)
            _raise_failure(await _finished(xfer, timeout))
        finally:
            self.client.forget_transfer(xfer)

    @staticmethod
    async def _send(write, timeout: float) -> None:
        try:
            await asyncio.wait_for(write, timeout)
        except TimeoutError:
            raise AgentTimeout(f"the agent took no archive data for {timeout:g} s") from None


async def _finished(xfer: Transfer, timeout: float) -> p.Event:
    """The transfer's finished event, sent by the guest once its work is done."""
    try:
        return await asyncio.wait_for(asyncio.shield(xfer.finished), timeout)
    except TimeoutError:
        raise AgentTimeout(f"the agent did not finish {xfer.job} in {timeout:g} s") from None


def _raise_failure(event: p.Event) -> None:
    if event.status:
        raise AgentError(event.error or os.strerror(event.status), errno=event.status)
