"""A container's layer of changes, for commit, diff and export.

The agent streams the overlay upper directory (see Files.archive with ``changes``); it is
spooled to a file for the image side to filter and store. A commit pauses the container
as Docker does, but inside its VM: the agent stops every process of the container
(SIGSTOP) while it copies, so the layer is taken at one instant; the VM itself keeps
running, since its agent does the copy.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from hyperd.agent.client import AgentError

from .model import Container

if TYPE_CHECKING:
    from .service import ContainerService


@contextlib.asynccontextmanager
async def frozen(svc: ContainerService, c: Container, pause: bool) -> AsyncIterator[bool]:
    """Stop c's processes for the duration (when ``pause`` and c runs); yields whether it did."""
    run = svc.monitor.run(c.id)
    agent = run.sandbox.agent if pause and run is not None and not c.state.paused else None
    if agent is not None:
        try:
            await agent.freeze(c.id, True)
        except AgentError:
            agent = None  # it ended meanwhile: nothing runs to stop
    try:
        yield agent is not None
    finally:
        if agent is not None:
            with contextlib.suppress(AgentError, TimeoutError):
                await agent.freeze(c.id, False)


@contextlib.asynccontextmanager
async def changes_tar(
    svc: ContainerService, c: Container, workdir: Path, pause: bool = False
) -> AsyncIterator[Path]:
    """c's changes as the agent sends them (an OCI layer tar), in a file under ``workdir``
    that lives as long as the context."""
    fd, tmp = tempfile.mkstemp(dir=workdir, prefix="changes-", suffix=".tar")
    path = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            async with (
                frozen(svc, c, pause),
                svc.files.archive(c, "/", changes=True) as (_info, chunks),
            ):
                async for chunk in chunks:
                    f.write(chunk)
        yield path
    finally:
        path.unlink(missing_ok=True)


def image_config(c: Container, base: dict) -> dict:
    """The runtime config a commit of c records: the image's ``base`` config under what c
    runs with (its command, environment, user, ports, volumes, labels), as Docker's."""
    cfg = c.config
    out = dict(base)
    out.update(
        {
            "Cmd": cfg.cmd or None,
            "Entrypoint": cfg.entrypoint or None,
            "Env": list(cfg.env) or None,
            "WorkingDir": cfg.working_dir,
            "User": cfg.user,
            "ExposedPorts": {p: {} for p in cfg.exposed_ports} or None,
            "Volumes": {v: {} for v in cfg.volumes} or None,
            "Labels": dict(cfg.labels) or None,
            "StopSignal": cfg.stop_signal or base.get("StopSignal") or None,
            "Tty": cfg.tty,
            "OpenStdin": cfg.open_stdin,
            "StdinOnce": cfg.stdin_once,
        }
    )
    return {k: v for k, v in out.items() if v is not None}


def created_by(c: Container) -> str:
    """The history line of a commit of c (Docker's: its command)."""
    return " ".join(c.config.cmd or [])
