"""A container's files from the host: stat, tar out, tar in, and its layer of changes.

A running container is reached through its own agent. A stopped one gets a sandbox of its
own for the time of the request: its disks (image, writable layer, volumes) and shares in a
VM with no process, powered off cleanly after, so nothing is loop-mounted on the host and
writes land on its disks. The container's lock is held meanwhile, so a start waits.
"""

from __future__ import annotations

import contextlib
import stat as st
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from hyperd.agent.client import AgentError
from hyperd.agent.facade import Agent
from hyperd.errors import Conflict, HyperError, InvalidArgument, NotFound

from .boot import devices, sandbox_spec, with_serials
from .model import Container

if TYPE_CHECKING:
    from .service import ContainerService

# Go's os.FileMode type bits, which Docker's X-Docker-Container-Path-Stat header carries.
_GO_TYPE_BITS = (
    (st.S_ISDIR, 1 << 31),
    (st.S_ISLNK, 1 << 27),
    (st.S_ISBLK, 1 << 26),
    (st.S_ISFIFO, 1 << 25),
    (st.S_ISSOCK, 1 << 24),
    (st.S_ISCHR, (1 << 26) | (1 << 21)),
)


@dataclass
class PathInfo:
    """Docker's container path stat."""

    name: str
    size: int
    mode: int  # Go's os.FileMode
    mtime: str
    link_target: str

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "size": self.size,
            "mode": self.mode,
            "mtime": self.mtime,
            "linkTarget": self.link_target,
        }


def go_file_mode(mode: int) -> int:
    """A POSIX st_mode as Go's os.FileMode."""
    out = st.S_IMODE(mode) & 0o777
    for test, bit in _GO_TYPE_BITS:
        if test(mode):
            out |= bit
    if mode & st.S_ISUID:
        out |= 1 << 23
    if mode & st.S_ISGID:
        out |= 1 << 22
    if mode & st.S_ISVTX:
        out |= 1 << 20
    return out


def _info(raw) -> PathInfo:
    mtime = datetime.fromtimestamp(raw.mtime, UTC).isoformat().replace("+00:00", "Z")
    return PathInfo(raw.name, raw.size, go_file_mode(raw.mode), mtime, raw.link_target)


def _check_path(path: str) -> str:
    if not path:
        raise InvalidArgument("path is required")
    return path if path.startswith("/") else f"/{path}"


def _agent_error(c: Container, path: str, exc: AgentError) -> HyperError:
    if exc.errno == 2:
        return NotFound(f"Could not find the file {path} in container {c.name}")
    if exc.errno == 20:
        return InvalidArgument(f"extraction point is not a directory: {path}")
    return Conflict(f"{path} in container {c.name}: {exc.message}")


class Files:
    """The file operations of the container service."""

    def __init__(self, service: ContainerService):
        self.service = service

    @contextlib.asynccontextmanager
    async def agent(self, c: Container) -> AsyncIterator[Agent]:
        """An agent with c's filesystems mounted: its own if it runs, a short-lived one if not."""
        svc = self.service
        run = svc.monitor.run(c.id)
        if run is not None:
            if c.state.paused:
                raise Conflict(f"Container {c.id} is paused, unpause it first")
            yield run.sandbox.agent
            return
        async with svc.lock(c.id):
            if svc.monitor.run(c.id) is not None:  # started meanwhile
                yield svc.monitor.run(c.id).sandbox.agent
                return
            await svc.teardowns.wait(c)
            mounts, disks, shares = devices(svc, c)
            spec = sandbox_spec(svc, c, disks, shares)
            spec.networks, spec.port_requests = [], []
            sb = await svc.sandboxes.create(spec)
            try:
                await sb.agent.create_container(c.id, with_serials(mounts, sb.serials), None, False)
                yield sb.agent
                await sb.agent.sync(c.id)
            finally:
                await svc.sandboxes.release(sb, graceful=True)

    async def stat(self, c: Container, path: str) -> PathInfo:
        """HEAD /containers/{id}/archive."""
        path = _check_path(path)
        async with self.agent(c) as agent:
            try:
                return _info(await agent.stat_path(c.id, path))
            except AgentError as exc:
                raise _agent_error(c, path, exc) from exc

    @contextlib.asynccontextmanager
    async def archive(
        self, c: Container, path: str, changes: bool = False
    ) -> AsyncIterator[tuple[PathInfo, AsyncIterator[bytes]]]:
        """GET /containers/{id}/archive (and the layer of changes): the stat and the tar."""
        path = _check_path(path)
        async with self.agent(c) as agent:
            try:
                raw, chunks = await agent.archive_out(c.id, path, changes)
            except AgentError as exc:
                raise _agent_error(c, path, exc) from exc
            try:
                yield _info(raw), chunks
            finally:
                with contextlib.suppress(Exception):
                    await chunks.aclose()

    async def extract(
        self, c: Container, path: str, chunks: AsyncIterable[bytes], no_overwrite: bool
    ) -> None:
        """PUT /containers/{id}/archive: a tar extracted under the directory ``path``."""
        path = _check_path(path)
        if c.host.readonly_rootfs:
            raise Conflict(f"container {c.name} has a read-only root filesystem")
        async with self.agent(c) as agent:
            try:
                await agent.archive_in(c.id, path, chunks, no_overwrite)
            except AgentError as exc:
                raise _agent_error(c, path, exc) from exc
