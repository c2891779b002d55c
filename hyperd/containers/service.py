"""The container lifecycle: create, start, stop, kill, restart, pause, rename, update, remove.

Each operation takes the container's own lock, never a global one, and no lock is held
while another container's VM boots. Runs are watched by the Monitor (monitor.py); execs
live in exec.py; the VM, its network and its agent are a Sandbox (hyperd/sandbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import shutil
import time
from pathlib import Path

from hyperd.agent.client import AgentError, AgentTimeout
from hyperd.config import Config
from hyperd.errors import Conflict, HyperError, InvalidArgument
from hyperd.events import EventBus
from hyperd.images.service import ImageService
from hyperd.sandbox import BlankDisk, Sandboxes
from hyperd.state import StateStore
from hyperd.volumes import VolumeStore

from . import boot as booting
from . import create as creating
from . import hosts, links, networking
from . import prune as pruning
from . import restore as restoring
from . import volumes as mounting
from .exec import Execs
from .files import Files
from .io import INIT, ContainerIO
from .logs import log_limits, read_logs
from .model import Container
from .monitor import Monitor, Run
from .process import main_process
from .resolver import Resolver
from .signals import parse_signal
from .spec import CreateSpec, EndpointSpec, UpdateSpec
from .state import EXITED, RESTARTING
from .stats import Sample
from .store import ContainerStore
from .teardown import Teardowns

log = logging.getLogger(__name__)
DEFAULT_STOP_TIMEOUT = 10
KILL_WAIT = 10  # seconds a SIGKILLed process has to go before its VM is destroyed
TEARDOWN_GRACE_S = 15  # at shutdown, for the VMs of ended runs to go down (graceful: synced)


class ContainerService:
    """All containers of this daemon."""

    def __init__(
        self,
        config: Config,
        images: ImageService,
        sandboxes: Sandboxes,
        db: StateStore,
        events: EventBus,
        volumes: VolumeStore,
    ):
        self.config = config
        self.images = images
        self.volumes = volumes
        self.sandboxes = sandboxes
        # pool VMs boot with a blank writable layer: a container never started takes it
        sandboxes.pool_vms.blank = BlankDisk(
            booting.RW_SERIAL, creating.RW_DISK, creating.make_writable_disk
        )
        sandboxes.pool_vms.root_fstype = images.rootfs_fstype
        self.events = events
        self.store = ContainerStore(db, self._image_id)
        self.monitor = Monitor(self)
        self.teardowns = Teardowns(self)
        self.execs = Execs(self)
        self.files = Files(self)
        self.dns = Resolver(self)  # the embedded DNS of user-defined networks
        self.root = Path(config.root) / "containers"
        self.root.mkdir(parents=True, exist_ok=True)
        self._io: dict[str, ContainerIO] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()
        self._seq = itertools.count(time.time_ns() // 1000)

    # -- plumbing --------------------------------------------------------------------------

    def spawn(self, coro) -> asyncio.Task:
        """A background task the service keeps a reference to."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def new_seq(self) -> int:
        """A stream seq no process of this daemon uses."""
        return next(self._seq)

    def lock(self, cid: str) -> asyncio.Lock:
        """The container's own lock (start, stop, remove and file access take it)."""
        return self._locks.setdefault(cid, asyncio.Lock())

    def _image_id(self, ref: str) -> str | None:
        try:
            return self.images.resolve(ref).id
        except HyperError:
            return None

    def dir(self, c: Container) -> Path:
        """The container's directory (writable disk, logs, console)."""
        return self.root / c.id

    def log_path(self, c: Container) -> Path:
        return self.dir(c) / "container.log"

    def console_path(self, c: Container) -> Path:
        return self.dir(c) / "console.log"

    def io(self, c: Container) -> ContainerIO:
        """The container's log writer and output fan-out."""
        cio = self._io.get(c.id)
        if cio is None:
            limits = None
            if c.host.log_config.type != "none":
                limits = log_limits({**self.config.log_opts, **c.host.log_config.config})
            cio = self._io[c.id] = ContainerIO(self.log_path(c), limits)
        return cio

    def event_attrs(self, c: Container) -> dict[str, str]:
        """Attributes of a container's events: name, image and labels."""
        return {**c.config.labels, "name": c.name, "image": c.image}

    def _event(self, c: Container, action: str, **extra) -> None:
        self.events.publish("container", action, c.id, **self.event_attrs(c), **extra)

    def image_in_use(self, image_id: str) -> bool:
        """Does any container use this image (for rmi)?"""
        return any(c.image_id == image_id for c in self.store)

    # -- create ----------------------------------------------------------------------------

    async def create(self, spec: CreateSpec) -> Container:
        """Create a container; nothing is left behind when this fails."""
        c = await creating.new_container(self, spec)
        cdir = self.dir(c)
        try:
            cdir.mkdir(parents=True)
            cdir.chmod(0o711)  # QEMU runs as libvirt-qemu and must reach the disk and console
            await creating.make_writable_disk(cdir / creating.RW_DISK)
            await self.store.add(c)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, cdir, True)
            raise
        log.info("created container %s (%s) from %s", c.id[:12], c.name, c.image)
        self._event(c, "create")
        return c

    # -- start -----------------------------------------------------------------------------

    async def start(self, ref: str) -> bool:
        """Boot the container's sandbox and start its process; False if already running."""
        c = self.store.get(ref)
        async with self.lock(c.id):
            if c.state.paused:
                raise Conflict("cannot start a paused container, try unpause instead")
            if c.running:
                return False
            c.state.manually_stopped = False
            await self._start(c)
            return True

    async def _start(self, c: Container) -> None:
        try:
            links.env(c, self.store.find)  # a link to a container that does not run: refused
        except HyperError:
            await self.monitor.drop_kept(c)
            raise
        kept = await self.monitor.take_kept(c)
        await self.teardowns.wait(c)
        try:
            run = await (booting.rerun(self, c, kept) if kept else booting.boot(self, c))
        except BaseException as exc:
            await self._start_failed(c, exc)
            raise
        c.state.set_running()
        self.monitor.watch(c, run)
        await self.store.save(c)
        log.info("started container %s in VM %s", c.id[:12], c.sandbox)
        self._event(c, "start")
        await self.refresh_hosts(first=c)

    async def _start_failed(self, c: Container, exc: BaseException) -> None:
        code = exc.exit_code if isinstance(exc, booting.StartFailed) else 128
        message = exc.message if isinstance(exc, HyperError) else str(exc) or type(exc).__name__
        c.state.set_start_failed(message, code)
        await self.store.save(c)
        if c.host.auto_remove and c.id in self.store:
            await self._forget(c, volumes=True)  # as Docker: --rm holds for a failed start too

    async def restart_policy_start(self, c: Container) -> None:
        """The restart policy's start after an exit (scheduled by the monitor)."""
        async with self.lock(c.id):
            if c.id not in self.store or c.state.status != RESTARTING:
                return
            c.restart_count += 1
            try:
                await self._start(c)
            except HyperError as exc:
                log.error("restart of %s failed: %s", c.id[:12], exc.message)
                c.state.set_stopped(c.state.exit_code, error=exc.message)
                await self.store.save(c)

    # -- stop / kill / restart / pause -----------------------------------------------------

    async def stop(self, ref: str, timeout: int | None = None) -> bool:
        """Stop signal, then SIGKILL after ``timeout`` s, then destroy; False if not running."""
        c = self.store.get(ref)
        async with self.lock(c.id):
            if c.state.status == RESTARTING:
                self.monitor.cancel_restart(c.id)
                await self.monitor.drop_kept(c)
                c.state.manually_stopped = True
                c.state.set_stopped(c.state.exit_code)
                await self.store.save(c)
                return True
            run = self.monitor.run(c.id)
            if run is None:
                return False
            c.state.manually_stopped = True
            if timeout is None:
                timeout = c.config.stop_timeout
            await self._stop_run(c, run, DEFAULT_STOP_TIMEOUT if timeout is None else timeout)
            return True

    async def _stop_run(self, c: Container, run: Run, timeout: float) -> None:
        """The stop signal, then SIGKILL, then the VM is destroyed: at once when its guest
        does not answer, so a hung guest is stopped within the agent's bound."""
        if c.state.paused:
            await self._set_paused(c, run, False)
        self._event(c, "kill", signal=parse_signal(c.config.stop_signal or "SIGTERM"))
        steps = ((parse_signal(c.config.stop_signal or "SIGTERM"), timeout), (9, 5))
        for sig, wait in steps:
            if run.sandbox.unresponsive:
                break
            with contextlib.suppress(AgentError):  # bounded by the agent's timeout
                await run.sandbox.agent.kill_container(c.id, sig)
            if await run.ended(None if wait < 0 else wait):
                self._event(c, "stop")
                return
        await run.sandbox.destroy()
        with contextlib.suppress(asyncio.TimeoutError):  # the monitor records the exit
            await asyncio.wait_for(asyncio.shield(run.watcher), 10)
        self._event(c, "stop")

    async def kill(self, ref: str, signal: str | int = "SIGKILL") -> None:
        """Send a signal to the main process."""
        c = self.store.get(ref)
        sig = parse_signal(signal)
        run = self.monitor.run(c.id)
        if run is None:
            raise Conflict(f"Container {c.id} is not running")
        if c.state.paused and sig != 9:
            raise Conflict(
                f"Container {c.id} is paused. Unpause the container before stopping or killing"
            )
        if sig in (9, parse_signal(c.config.stop_signal or "SIGTERM")):
            c.state.manually_stopped = True  # as Docker: no restart after this one
        if c.state.paused:
            await self._set_paused(c, run, False)  # a suspended guest cannot take a signal
        try:
            await run.sandbox.agent.kill_container(c.id, sig)
        except AgentTimeout as exc:
            if sig != 9:
                raise Conflict(f"cannot signal container {c.id}: {exc.message}") from exc
            await run.sandbox.destroy()  # SIGKILL always works: the VM goes
        except AgentError as exc:
            raise Conflict(f"cannot signal container {c.id}: {exc.message}") from exc
        self._event(c, "kill", signal=sig)
        if sig == 9 and not await run.ended(KILL_WAIT):
            # as Docker, a SIGKILL answers once the container is down: take its VM down
            await run.sandbox.destroy()
            await run.ended(10)

    async def restart(self, ref: str, timeout: int | None = None) -> None:
        """Stop (if running) and start again, in the same VM when it is still up."""
        c = self.store.get(ref)
        if self.monitor.run(c.id) is not None:
            self.monitor.keep_for_restart(c.id)
        await self.stop(ref, timeout)
        async with self.lock(c.id):
            if not c.running:
                c.state.manually_stopped = False
                await self._start(c)
        self._event(c, "restart")

    async def pause(self, ref: str) -> None:
        """Suspend the container's VM."""
        c = self.store.get(ref)
        async with self.lock(c.id):
            run = self.monitor.run(c.id)
            if run is None or c.state.status != "running":
                state = "paused" if c.state.paused else "not running"
                raise Conflict(f"Container {c.id} is {state}")
            await self._set_paused(c, run, True)

    async def unpause(self, ref: str) -> None:
        """Resume the container's VM."""
        c = self.store.get(ref)
        async with self.lock(c.id):
            run = self.monitor.run(c.id)
            if run is None or not c.state.paused:
                raise Conflict(f"Container {c.id} is not paused")
            await self._set_paused(c, run, False)

    async def _set_paused(self, c: Container, run: Run, paused: bool) -> None:
        if paused:
            await run.sandbox.pause()
        else:
            await run.sandbox.resume()
        c.state.set_paused(paused)
        await self.store.save(c)
        self._event(c, "pause" if paused else "unpause")

    # -- rename / update -------------------------------------------------------------------

    async def rename(self, ref: str, name: str) -> None:
        """Give a container a new name."""
        c = self.store.get(ref)
        new = creating.check_new_name(name)
        if new == c.name:
            raise Conflict("Renaming a container with the same name as its current name")
        self.store.check_name(new, c.id)
        old, c.name = c.name, new
        await self.store.save(c)
        self._event(c, "rename", oldName=f"/{old}")
        await self.refresh_hosts()

    async def update(self, ref: str, spec: UpdateSpec) -> list[str]:
        """Change resources or the restart policy; returns Docker's warnings."""
        c = self.store.get(ref)
        warnings = []
        async with self.lock(c.id):
            if spec.restart is not None:
                if c.host.auto_remove and spec.restart.name != "no":
                    raise InvalidArgument(
                        "Restart policy cannot be updated because AutoRemove is enabled"
                    )
                c.host.restart = spec.restart
            resources = {
                "memory": spec.memory,
                "nano_cpus": spec.nano_cpus,
                "cpu_shares": spec.cpu_shares,
            }
            for key, value in resources.items():
                if value is not None:
                    setattr(c.host, key, value)
            if spec.memory is not None:
                c.memory = spec.memory
            if spec.nano_cpus is not None:
                c.cpus = creating.vcpus_for(self, c.host.nano_cpus)
            if c.running and (spec.memory or spec.nano_cpus):
                warnings.append(
                    "memory and CPU changes take effect when the container's VM next starts"
                )
            await self.store.save(c)
        self._event(c, "update")
        return warnings

    # -- remove ----------------------------------------------------------------------------

    def volume_users(self, name: str) -> list[str]:
        """IDs of the containers that mount a volume (it cannot be removed while they do)."""
        return mounting.users(self, name)

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """Remove a container; a running one only with force (its VM is destroyed); with
        ``volumes``, its anonymous volumes too."""
        c = self.store.get(ref)
        run = self.monitor.run(c.id)
        if force and run is not None and self.lock(c.id).locked():
            await run.sandbox.destroy()  # a stop waiting for the process ends now
        async with self.lock(c.id):
            if c.running and not force:
                raise Conflict(
                    f"You cannot remove a {c.state.status} container "
                    f"{c.id}. Stop the container before attempting removal or force remove"
                )
            c.state.manually_stopped = True
            run = self.monitor.forget(c.id)
            if run is not None:
                # a volume or bind must get what the container wrote: the agent syncs and
                # unmounts (bounded; a guest that does not answer is destroyed anyway)
                graceful = mounting.has_durable_mounts(c)
                await self.sandboxes.release(run.sandbox, graceful=graceful)
                await self.monitor.drain(run, 1)
                if c.state.status != EXITED:
                    c.state.set_stopped(137)
                    self._event(c, "die", exitCode=137)
            await self._forget(c, volumes)

    async def remove_link(self, path: str) -> None:
        """Remove the link ``PARENT/ALIAS`` (``docker rm --link``); both containers stay."""
        parent, link = links.find_link(path, self.store.get)
        async with self.lock(parent.id):
            parent.host.links.remove(link)
            await self.store.save(parent)
        await self.refresh_hosts()

    async def remove_exited(self, c: Container) -> None:
        """Auto-removal after the exit (``--rm``)."""
        async with self.lock(c.id):
            if c.id in self.store and not c.running:
                self.monitor.forget(c.id)
                await self._forget(c, volumes=True)

    async def _forget(self, c: Container, volumes: bool = False) -> None:
        await self.monitor.drop_kept(c)
        anonymous = mounting.anonymous(self, c) if volumes else []
        await self.store.remove(c)
        for name in anonymous:
            with contextlib.suppress(HyperError):
                await asyncio.to_thread(self.volumes.remove, name, self.volume_users(name))
                self.events.publish("volume", "destroy", name, driver="local")
        cio = self._io.pop(c.id, None)
        if cio is not None:
            cio.close()
        self.execs.drop_container(c.id)
        self.teardowns.delete_files(c)
        self._locks.pop(c.id, None)
        c.state.set_removed()
        log.info("removed container %s", c.id[:12])
        self._event(c, "destroy")
        await self.refresh_hosts()

    async def prune(self, labels: list[str], until: float | None) -> tuple[list[str], int]:
        """Remove every stopped container (matching the filters); (IDs, bytes freed)."""
        return await pruning.prune(self, labels, until)

    # -- waiting, attaching, terminal size -------------------------------------------------

    def wait(self, ref: str, condition: str):
        """A future of the ExitStatus meeting ``condition`` (see State.wait)."""
        return self.store.get(ref).state.wait(condition)

    async def running_agent(self, c: Container, timeout: float = 120):
        """The agent of c's run, waiting while c is created or starting (attach before start);
        None if c does not run by then."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.monitor.run(c.id)
            if run is not None:
                return run.sandbox.agent
            if c.id not in self.store or c.state.status == EXITED:
                return None
            await asyncio.sleep(0.05)
        return None

    async def resize(self, ref: str, rows: int, cols: int) -> None:
        """Set the terminal size of the main process (now, or at start)."""
        c = self.store.get(ref)
        self.io(c).size = (rows, cols)
        run = self.monitor.run(c.id)
        if run is not None and c.config.tty:
            with contextlib.suppress(AgentError):
                await run.sandbox.agent.winsize(c.id, INIT, rows, cols)

    def logs(self, c: Container, *, tail=None, since=0.0, until=None, follow=False):
        """An async iterator of (time, stream, data) from the container's log file."""
        return read_logs(
            self.log_path(c),
            tail=tail,
            since=since,
            until=until,
            follow=follow,
            still_running=lambda: c.running and c.id in self.store,
        )

    def _agent_of(self, c: Container):
        run = self.monitor.run(c.id)
        if run is None or c.state.status == RESTARTING:
            raise Conflict(f"Container {c.id} is not running")
        return run

    async def processes(self, c: Container) -> list:
        """The processes of a running container (``docker top``)."""
        run = self._agent_of(c)
        try:
            return await run.sandbox.agent.processes(c.id)
        except AgentError as exc:
            raise Conflict(f"cannot list the processes of {c.id}: {exc.message}") from exc

    async def stats(self, c: Container):
        """A sample of the container's VM counters (``docker stats``)."""
        run = self.monitor.run(c.id)
        if run is None:
            return Sample.idle(c.memory)
        return Sample.of(await run.sandbox.machine.stats(), c.memory)

    def check_exec_target(self, c: Container) -> None:
        """Conflict unless c runs (and is not paused): execs need a live agent."""
        if self.monitor.run(c.id) is None or c.state.status == RESTARTING:
            raise Conflict(f"Container {c.id} is not running")
        if c.state.paused:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        self.check_responsive(c)

    def check_responsive(self, c: Container) -> None:
        """Conflict when c's VM does not answer (exec and attach would wait in vain)."""
        run = self.monitor.run(c.id)
        if run is not None and run.sandbox.unresponsive:
            raise Conflict(
                f"Container {c.id}'s VM is not responding ({run.sandbox.unresponsive}): "
                "stop, kill or remove it"
            )

    def main_process(self, c: Container):
        """The agent's PROCESS for c's main process (its links' variables included)."""
        size = self.io(c).size
        if size == (0, 0) and c.host.console_size:
            size = c.host.console_size
        return main_process(c, size, links.env(c, self.store.find))

    # -- networks ------------------------------------------------------------------------

    async def connect(self, ref: str, network: str, ep: EndpointSpec) -> None:
        """Join a network: at the next start, or now (a hot-plugged NIC) when running."""
        await networking.connect(self, ref, network, ep)

    async def disconnect(self, ref: str, network: str, force: bool = False) -> None:
        """Leave a network: at the next start, or now (the NIC unplugged) when running."""
        await networking.disconnect(self, ref, network, force)

    # -- names between containers ----------------------------------------------------------

    async def refresh_hosts(self, first: Container | None = None, wait: bool = False) -> None:
        """Rewrite /etc/hosts in every running container (see hosts.refresh)."""
        await hosts.refresh(self, first, wait)

    # -- daemon start and stop -------------------------------------------------------------

    async def restore(self) -> None:
        """Load records; re-adopt VMs that kept running while hyperd was away."""
        await restoring.restore(self)

    async def shutdown(self) -> None:
        """Daemon shutdown: leave VMs running (live restore), close agent connections; the
        VMs of ended runs finish going down first."""
        await self.teardowns.finish(TEARDOWN_GRACE_S)
        for task in list(self._tasks):
            task.cancel()
        await restoring.shutdown(self, self.monitor.runs().values())
        await self.dns.close()
        for cio in self._io.values():
            cio.close()
