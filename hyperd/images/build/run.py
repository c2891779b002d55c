"""RUN: the step's command in a real container (a VM) made through the container service,
then its changes committed as the step's layer. No lifecycle of its own: create, start,
wait, commit and remove are the core's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from hyperd.containers import snapshot
from hyperd.containers.boot import StartFailed
from hyperd.containers.service import ContainerService
from hyperd.containers.spec import ContainerConfig, CreateSpec, HostSpec
from hyperd.errors import HyperError
from hyperd.images.commit import NewImage, commit_changes
from hyperd.images.service import ImageService
from hyperd.images.store import ImageRecord
from hyperd.images.tree import Tree

STDERR_START, STDERR_END = "\x1b[91m", "\x1b[0m"  # how Docker marks a step's stderr


class BuildError(HyperError):
    """A build step failed; ``code`` is the failing command's exit code (Docker's
    errorDetail.code)."""

    status = 400

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.code = code


@dataclass
class RunOptions:
    """How a build's RUN containers are made (from the build request)."""

    network_mode: str = "default"
    extra_hosts: list[str] = field(default_factory=list)
    shm_size: int = 0
    memory: int = 0
    rm: bool = True
    forcerm: bool = False


class Runner:
    """Runs build steps' commands in containers and commits what they changed."""

    def __init__(
        self,
        containers: ContainerService,
        images: ImageService,
        options: RunOptions,
        emit: Callable[[dict], None],
    ):
        self.containers, self.images, self.options = containers, images, options
        self.emit = emit

    def _spec(self, image: ImageRecord, cmd: list[str], env: list[str], config: dict):
        cfg = ContainerConfig(
            image=image.id,
            cmd=cmd,
            entrypoint=[],
            env=env,
            working_dir=config.get("WorkingDir") or "",
            user=config.get("User") or "",
            attach_stdout=True,
            attach_stderr=True,
        )
        opts = self.options
        host = HostSpec(
            network_mode=opts.network_mode or "default",
            extra_hosts=list(opts.extra_hosts),
            shm_size=opts.shm_size,
            memory=opts.memory,
        )
        return CreateSpec(config=cfg, host=host)

    async def run(
        self,
        image: ImageRecord | None,
        cmd: list[str],
        env: list[str],
        new: NewImage,
        lower: Tree,
    ) -> ImageRecord:
        """Run ``cmd`` on ``image``; the image of its changes with ``new``'s config."""
        if image is None:
            raise BuildError("RUN needs a base image with a shell: this stage is FROM scratch")
        svc = self.containers
        c = await svc.create(self._spec(image, cmd, env, new.config))
        self.emit({"stream": f" ---> Running in {c.id[:12]}\n"})
        ok = cancelled = False
        try:
            code = await self._run(c)
            if code != 0:
                raise BuildError(
                    f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", code
                )
            async with snapshot.changes_tar(svc, c, self.images.store.ingest_dir) as tar:
                rec = await asyncio.to_thread(
                    commit_changes, self.images, image, tar, new, (), lower
                )
            ok = True
            return rec
        except asyncio.CancelledError:
            cancelled = True  # the client went away: nothing of this step stays
            raise
        finally:
            if (ok and self.options.rm) or self.options.forcerm or cancelled:
                with contextlib.suppress(HyperError):
                    await svc.remove(c.id, force=True, volumes=True)
                    self.emit({"stream": f"Removing intermediate container {c.id[:12]}\n"})

    async def _run(self, c) -> int:
        """Start c, relay its output as build output, and return its exit code."""
        svc = self.containers
        queue = svc.io(c).output.subscribe()
        waiter = svc.wait(c.id, "next-exit")
        try:
            try:
                await svc.start(c.id)
            except StartFailed as exc:
                self.emit({"stream": f"{STDERR_START}{exc.message}\n{STDERR_END}"})
                return exc.exit_code
            while (item := await queue.get()) is not None:
                stream, data = item
                text = data.decode("utf-8", errors="replace")
                if stream == "stderr":
                    text = f"{STDERR_START}{text}{STDERR_END}"
                self.emit({"stream": text})
            return (await waiter).exit_code
        finally:
            svc.io(c).output.unsubscribe(queue)
            waiter.cancel()
