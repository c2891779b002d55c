"""The container lifecycle: create, start, stop, kill, remove, wait, exec, restart, re-adopt.

One container runs in one VM. The manager owns container records (persisted in the state
store), the runtime of running ones, and the policies: restart, auto-remove, resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import re
import secrets
import shutil
import signal as signals
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from hyperd.agent import protocol as p
from hyperd.agent.client import AgentError, ProcessIO
from hyperd.config import Config
from hyperd.errors import Conflict, HyperError, InvalidArgument, NotFound
from hyperd.images.errors import ImageNotFound
from hyperd.images.reference import parse_reference
from hyperd.images.service import ImageService
from hyperd.network import Endpoint, Network
from hyperd.portspec import PortBinding, parse_exposed
from hyperd.state import StateStore
from hyperd.units import parse_size
from hyperd.vm import accel, designer
from hyperd.vm.machine import DOMAIN_PREFIX, GuestAssets, Machine
from hyperd.vm.virt import Hypervisor

from . import model as m
from .logs import LogWriter, read_logs
from .runtime import INIT, Output, Runtime

log = logging.getLogger(__name__)

MIN_MEMORY = 64 << 20
RW_DISK_SIZE = "4G"
# Host memory a VM costs beyond its guest RAM (QEMU itself, TCG translation cache).
VM_OVERHEAD = 48 << 20
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RESTART_BACKOFF = (0.1, 10.0)


class InsufficientResources(HyperError):
    """The host cannot hold what a container asks for."""


class CannotExecute(HyperError):
    """The agent refused to start a process (e.g. unknown user)."""

    exit_code = 126


@dataclass
class Exec:
    """A process started in a running container with `exec`."""

    id: str
    container: str
    args: list[str]
    env: list[str]
    workdir: str
    user: str
    tty: bool
    attach_stdin: bool
    running: bool = False
    exit_code: int | None = None
    io: ProcessIO | None = None
    size: tuple[int, int] = (0, 0)


def parse_signal(value: str | int) -> int:
    """A signal by number or name (KILL, SIGKILL)."""
    text = str(value).strip().upper()
    if text.isdigit():
        num = int(text)
        if 0 < num < 65:
            return num
    else:
        name = text if text.startswith("SIG") else f"SIG{text}"
        with contextlib.suppress(AttributeError):
            return int(getattr(signals.Signals, name))
    raise InvalidArgument(f"invalid signal: {value}")


def _env_list(env: list[str] | None, what: str) -> list[str]:
    if env is None:
        return []
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        raise InvalidArgument(f"{what} must be a list of KEY=VALUE strings")
    return env


def merge_env(*lists: list[str]) -> dict[str, str]:
    """Later lists override earlier ones, key by key (KEY=VALUE strings)."""
    out: dict[str, str] = {}
    for env in lists:
        for item in env:
            key, sep, value = item.partition("=")
            if key and sep:
                out[key] = value
    return out


def _str_list(value, what: str) -> list[str] | None:
    """Docker accepts a string or a list for Cmd/Entrypoint; None means not given."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise InvalidArgument(f"{what} must be a list of strings")


def host_dns() -> list[str]:
    """Nameservers of the host that a guest can reach (not the host's loopback)."""
    servers = []
    with contextlib.suppress(OSError), open("/etc/resolv.conf") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver" and not parts[1].startswith("127."):
                servers.append(parts[1])
    return servers


def mem_available() -> int:
    """The host's MemAvailable in bytes."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


class ContainerManager:
    """All containers of this daemon."""

    def __init__(
        self,
        config: Config,
        images: ImageService,
        hv: Hypervisor,
        state: StateStore,
        network: Network | None = None,
    ):
        self.config = config
        self.network = network
        self.images = images
        self.hv = hv
        self.state = state
        self.root = Path(config.root) / "containers"
        self.root.mkdir(parents=True, exist_ok=True)
        self.accel = accel.choose(config.accel)
        self.assets = GuestAssets.locate(config.kernel or None, config.initrd or None)
        self.containers: dict[str, m.Container] = {}
        self.runtimes: dict[str, Runtime] = {}
        self.outputs: dict[str, Output] = {}
        self.execs: dict[str, Exec] = {}
        self.sizes: dict[str, tuple[int, int]] = {}
        self._exits: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._changed = asyncio.Condition()
        self._stop_reasons: dict[str, str] = {}
        self._seq = itertools.count(time.time_ns() // 1000)
        self._tasks: set[asyncio.Task] = set()
        self._teardowns: dict[str, asyncio.Task] = {}

    # -- lookup ----------------------------------------------------------------------------

    def get(self, ref: str) -> m.Container:
        """A container by full ID, name (with or without '/'), or unique ID prefix."""
        ref = ref.removeprefix("/")
        if ref in self.containers:
            return self.containers[ref]
        for c in self.containers.values():
            if c.name == ref:
                return c
        matches = [c for c in self.containers.values() if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple containers match the ID prefix {ref}")
        raise NotFound(f"No such container: {ref}")

    def list(self, all_: bool = False, filters: dict[str, list[str]] | None = None):
        """Containers, newest first; without all_, only running ones."""
        unknown = set(filters or {}) - FILTERS
        if unknown:
            raise InvalidArgument(f"invalid filter '{sorted(unknown)[0]}'")
        out = sorted(self.containers.values(), key=lambda c: c.created, reverse=True)
        if not all_ and not (filters or {}).get("status"):
            out = [c for c in out if c.running]
        for key, values in (filters or {}).items():
            out = [c for c in out if any(_matches(c, key, v) for v in values)]
        return out

    def image_in_use(self, image_id: str) -> bool:
        """Does any container use this image (for rmi)?"""
        return any(c.image_id == image_id for c in self.containers.values())

    def _lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    def _dir(self, c: m.Container) -> Path:
        return self.root / c.id

    def log_path(self, c: m.Container) -> Path:
        """Where the container's output is kept."""
        return self._dir(c) / "container.log"

    def console_path(self, c: m.Container) -> Path:
        """The guest console log of the container's VM."""
        return self._dir(c) / "console.log"

    async def _save(self, c: m.Container) -> None:
        await asyncio.to_thread(self.state.put, c.id, c.name, c.to_dict())
        async with self._changed:
            self._changed.notify_all()

    # -- create ----------------------------------------------------------------------------

    async def create(self, body: dict, name: str | None = None) -> m.Container:
        """Create a container from a Docker create body."""
        if not isinstance(body, dict):
            raise InvalidArgument("request body must be a JSON object")
        c = self._new_record(body, name)
        cdir = self._dir(c)
        cdir.mkdir(parents=True)
        cdir.chmod(0o711)  # QEMU runs as libvirt-qemu and must reach the disk and console
        try:
            self.containers[c.id] = c
            await asyncio.to_thread(self.state.put, c.id, c.name, c.to_dict())
            await _run(
                "mkfs.ext4",
                "-q",
                "-F",
                "-O",
                "^has_journal",
                "-E",
                "lazy_itable_init=1",
                str(cdir / "rw.ext4"),
                RW_DISK_SIZE,
            )
        except sqlite3.IntegrityError:
            self.containers.pop(c.id, None)
            shutil.rmtree(cdir, ignore_errors=True)
            raise Conflict(f'The container name "/{c.name}" is already in use') from None
        except BaseException:
            self.containers.pop(c.id, None)
            await asyncio.to_thread(self.state.delete, c.id)
            shutil.rmtree(cdir, ignore_errors=True)
            raise
        log.info("created container %s (%s) from %s", c.id[:12], c.name, c.image)
        return c

    def _new_record(self, body: dict, name: str | None) -> m.Container:
        image = body.get("Image")
        if not image or not isinstance(image, str):
            raise InvalidArgument("no image given (Image)")
        try:
            rec = self.images.resolve(image)
        except ImageNotFound:
            parse_reference(image)  # a malformed reference is a 400, not a 404
            raise NotFound(f"No such image: {image}") from None
        icfg = self.images.image_config(rec.id)
        name = self._check_name(name)
        cid = secrets.token_hex(32)
        entrypoint = _str_list(body.get("Entrypoint"), "Entrypoint")
        cmd = _str_list(body.get("Cmd"), "Cmd")
        if entrypoint is None:
            entrypoint = icfg.get("Entrypoint") or []
            cmd = cmd or icfg.get("Cmd") or []
        cmd = cmd or []
        if not entrypoint and not cmd:
            raise InvalidArgument("no command specified")
        hc = body.get("HostConfig") or {}
        if not isinstance(hc, dict):
            raise InvalidArgument("HostConfig must be an object")
        labels = {**(icfg.get("Labels") or {}), **(body.get("Labels") or {})}
        return m.Container(
            id=cid,
            name=name or _random_name(),
            image=image,
            image_id=rec.id,
            created=m.now_rfc3339(),
            entrypoint=entrypoint,
            cmd=cmd,
            env=[*(icfg.get("Env") or []), *_env_list(body.get("Env"), "Env")],
            workdir=body.get("WorkingDir") or icfg.get("WorkingDir") or "/",
            user=body.get("User") or icfg.get("User") or "",
            hostname=body.get("Hostname") or cid[:12],
            tty=bool(body.get("Tty")),
            open_stdin=bool(body.get("OpenStdin")),
            stdin_once=bool(body.get("StdinOnce")),
            labels={str(k): str(v) for k, v in labels.items()},
            stop_signal=body.get("StopSignal") or icfg.get("StopSignal") or "SIGTERM",
            auto_remove=bool(hc.get("AutoRemove")),
            restart=self._restart_policy(hc.get("RestartPolicy")),
            cpus=self._cpus(hc.get("NanoCpus")),
            nano_cpus=int(hc.get("NanoCpus") or 0),
            memory=self._memory(hc.get("Memory")),
            vm=f"{DOMAIN_PREFIX}{cid[:12]}",
            image_config=icfg,
            network_mode=self._network_mode(hc.get("NetworkMode")),
            port_requests=port_requests(
                hc.get("PortBindings"),
                {**(icfg.get("ExposedPorts") or {}), **(body.get("ExposedPorts") or {})},
                bool(hc.get("PublishAllPorts")),
            ),
            links=self._links(hc.get("Links")),
        )

    def _check_name(self, name: str | None) -> str | None:
        if not name:
            return None
        name = name.removeprefix("/")
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
            raise InvalidArgument(
                f"Invalid container name ({name}): only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )
        if any(c.name == name for c in self.containers.values()):
            raise Conflict(f'The container name "/{name}" is already in use')
        return name

    @staticmethod
    def _network_mode(mode) -> str:
        if mode in (None, "", "default", "bridge"):
            return "default"
        if mode == "none":
            return "none"
        raise InvalidArgument(f"network {mode!r} not found (use default, bridge or none)")

    def _links(self, links) -> list[str]:
        out = []
        for link in links or []:
            if not isinstance(link, str):
                raise InvalidArgument("Links must be strings NAME[:ALIAS]")
            name, _, alias = link.removeprefix("/").partition(":")
            self.get(name)  # a link to a container that does not exist is an error
            out.append(f"{name}:{(alias or name).rsplit('/', 1)[-1]}")
        return out

    @staticmethod
    def _restart_policy(rp) -> m.RestartPolicy:
        rp = rp or {}
        name = rp.get("Name") or "no"
        if name not in ("no", "on-failure", "always", "unless-stopped"):
            raise InvalidArgument(f"invalid restart policy {name!r}")
        count = rp.get("MaximumRetryCount") or 0
        if not isinstance(count, int) or count < 0:
            raise InvalidArgument("MaximumRetryCount must be a non-negative integer")
        if count and name != "on-failure":
            raise InvalidArgument(
                f"maximum retry count cannot be used with restart policy '{name}'"
            )
        return m.RestartPolicy(name, count)

    def _cpus(self, nano) -> int:
        if not nano:
            return self.config.cpus
        if not isinstance(nano, int) or nano < 0:
            raise InvalidArgument("NanoCpus must be a positive integer")
        cpus = math.ceil(nano / 1e9)
        host = os.cpu_count() or 1
        if cpus > host:
            raise InvalidArgument(
                f"range of CPUs is from 0.01 to {host}.00, as there are only {host} CPUs available"
            )
        return cpus

    def _memory(self, memory) -> int:
        if not memory:
            return self.config.memory_bytes
        if not isinstance(memory, int):
            memory = parse_size(memory)
        if memory < MIN_MEMORY:
            raise InvalidArgument(f"minimum memory limit allowed is {MIN_MEMORY >> 20}MB")
        return memory

    # -- start -----------------------------------------------------------------------------

    async def start(self, ref: str) -> bool:
        """Boot the container's VM and start its process; False if already running."""
        c = self.get(ref)
        async with self._lock(c.id):
            if c.running:
                return False
            c.state.stopped_by_user = False
            try:
                await self._boot(c)
            except BaseException:
                if c.auto_remove and c.id in self.containers:
                    await self._remove(c)  # as Docker: --rm holds for a failed start too
                raise
            return True

    def _check_resources(self, c: m.Container) -> None:
        need = c.memory + VM_OVERHEAD
        avail = mem_available()
        if need > avail:
            raise InsufficientResources(
                f"cannot start {c.name}: it needs {need >> 20} MiB of host memory "
                f"but only {avail >> 20} MiB are available"
            )

    def _machine(self, c: m.Container, rootfs: str, ep: Endpoint | None = None) -> Machine:
        run = Path(self.config.run_dir) / "vms" / c.vm
        spec = designer.VMSpec(
            name=c.vm,
            uuid=str(uuid.uuid5(uuid.NAMESPACE_OID, c.id)),
            kernel=self.assets.kernel,
            initrd=self.assets.initrd,
            control_socket=str(run / "control.sock"),
            stream_socket=str(run / "stream.sock"),
            console_log=str(self.console_path(c)),
            vcpus=c.cpus,
            memory_mib=c.memory >> 20,
            disks=[
                designer.DiskSpec(rootfs, "image", readonly=True),
                designer.DiskSpec(str(self._dir(c) / "rw.ext4"), "rw"),
            ],
            nics=[designer.NicSpec(ep.mac, tap=ep.tap)] if ep else [],
            metadata={"container": c.id, "root": self.config.root},
        )
        return Machine(self.hv, spec, accel.domain_type(self.accel), self.config.tb_cache_mib)

    async def _boot(self, c: m.Container) -> None:
        await self._teardown_done(c)
        self._check_resources(c)
        rootfs = str(await asyncio.to_thread(self.images.rootfs_path, c.image_id))
        ep = await self._connect(c)  # ports reserved here: a clash fails before the VM boots
        machine = self._machine(c, rootfs, ep)
        rt = Runtime(machine)
        c.stdio_seq, c.stderr_seq = next(self._seq), (0 if c.tty else next(self._seq))
        try:
            await machine.boot(
                timeout=120, prepare=lambda a: rt.open_main(a, c.id, c.stdio_seq, c.stderr_seq)
            )
            await rt.agent.call(p.Code.STARTPOD, p.startpod(c.hostname, host_dns()))
            if ep is not None:
                await self._configure_guest_network(rt, ep)
            rt.start_pump(LogWriter(self.log_path(c)), self.outputs.setdefault(c.id, Output()))
            await rt.agent.call(
                p.Code.NEWCONTAINER,
                p.newcontainer(
                    c.id,
                    p.root_mounts("image", self.images.rootfs_fstype, "rw"),
                    self._process(c),
                ),
            )
            if not c.open_stdin and not c.tty:
                await rt.agent.close_stdin(c.stdio_seq)
        except BaseException as exc:
            await machine.destroy()
            await self._disconnect(c)
            if rt.pump:
                rt.pump.cancel()
            c.state.error = str(exc)
            await self._save(c)
            if isinstance(exc, AgentError):
                raise HyperError(f"cannot start container {c.name}: {exc.message}") from exc
            raise
        c.state.status, c.state.started_at = m.RUNNING, m.now_rfc3339()
        c.state.error = c.state.reason = ""
        c.state.exit_code = 0
        self.runtimes[c.id] = rt
        await self._save(c)
        rt.supervisor = self._spawn(self._supervise(c, rt))
        log.info("started container %s in VM %s (%s)", c.id[:12], c.vm, self.accel)
        await self._refresh_hosts()

    async def _connect(self, c: m.Container) -> Endpoint | None:
        """An address, a tap and the published ports for c (None with --network none)."""
        if self.network is None or c.network_mode == "none":
            return None
        ep = await asyncio.to_thread(self.network.attach, c.id)
        wanted = [
            PortBinding(r["proto"], r["host_ip"], r["host_port"], r["port"])
            for r in c.port_requests
        ]
        try:
            published = await asyncio.to_thread(self.network.publish, c.id, wanted)
        except BaseException:
            await asyncio.to_thread(self.network.detach, c.id)
            raise
        c.ip, c.mac = ep.ip, ep.mac
        c.published = [
            {
                "proto": b.proto,
                "host_ip": b.host_ip,
                "host_port": b.host_port,
                "port": b.container_port,
            }
            for b in published
        ]
        return ep

    async def _configure_guest_network(self, rt: Runtime, ep: Endpoint) -> None:
        await rt.agent.call(
            p.Code.SETUPINTERFACE,
            p.setupinterface(ep.mac, [(ep.ip, ep.prefix)], new_name="eth0"),
        )
        await rt.agent.call(
            p.Code.SETUPROUTE,
            p.setuproute([{"dest": "default", "gateway": ep.gateway, "device": "eth0"}]),
        )

    async def _unpublish(self, c: m.Container) -> None:
        """Free c's host ports (at once when it stops)."""
        if self.network is not None and c.published:
            await asyncio.to_thread(self.network.unpublish, c.id)
        c.published = []

    async def _disconnect(self, c: m.Container) -> None:
        """Release c's ports, tap and address (once its VM is gone)."""
        if self.network is not None and c.network_mode != "none":
            await asyncio.to_thread(self.network.detach, c.id)
        c.published, c.ip = [], ""

    def _hosts_file(self, c: m.Container) -> bytes:
        """/etc/hosts of c: itself, every running container by name, its links."""
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        if c.ip:
            lines.append(f"{c.ip}\t{c.hostname} {c.name}")
        for other in self.containers.values():
            if other.id != c.id and other.ip and other.id in self.runtimes:
                lines.append(f"{other.ip}\t{other.name}")
        for link in c.links:
            name, _, alias = link.partition(":")
            target = next((x for x in self.containers.values() if x.name == name), None)
            if target is not None and target.ip and c.ip:
                lines.append(f"{target.ip}\t{alias}")
        return ("\n".join(lines) + "\n").encode()

    async def _refresh_hosts(self) -> None:
        """Rewrite /etc/hosts in every running container (names come and go)."""
        for cid, rt in list(self.runtimes.items()):
            c = self.containers.get(cid)
            if c is None or c.network_mode == "none":
                continue
            with contextlib.suppress(AgentError):
                await rt.agent.call(
                    p.Code.WRITEFILE, p.writefile_payload(cid, "/etc/hosts", self._hosts_file(c))
                )

    def _process(self, c: m.Container, exec_: Exec | None = None) -> p.Process:
        env = merge_env(
            [f"PATH={DEFAULT_PATH}", f"HOSTNAME={c.hostname}"],
            c.env,
            ["TERM=xterm"] if (exec_.tty if exec_ else c.tty) else [],
            exec_.env if exec_ else [],
        )
        user = (exec_.user if exec_ and exec_.user else c.user) or ""
        user, _, group = user.partition(":")
        if exec_ is None:
            rows, cols = self.sizes.get(c.id, (0, 0))
            return p.Process(
                INIT,
                c.args,
                c.stdio_seq,
                c.stderr_seq,
                env,
                c.workdir,
                user,
                group,
                terminal=c.tty,
                rows=rows,
                columns=cols,
            )
        rows, cols = exec_.size
        return p.Process(
            exec_.id,
            exec_.args,
            exec_.io.stdio,
            exec_.io.stderr,
            env,
            exec_.workdir or c.workdir,
            user,
            group,
            terminal=exec_.tty,
            rows=rows,
            columns=cols,
        )

    # -- supervision -----------------------------------------------------------------------

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def vm_stopped(self, vm: str, reason: str) -> None:
        """libvirt event: a domain stopped (remember why, for the container record)."""
        self._stop_reasons[vm] = reason

    async def _supervise(self, c: m.Container, rt: Runtime) -> None:
        """Wait for the main process (or the VM) to end, then record and apply policy."""
        reason = ""
        try:
            status = await rt.io.exited
        except AgentError:
            status, reason = 137, await self._vm_end_reason(c)
        except asyncio.CancelledError:
            return
        await rt.drain()
        self.runtimes.pop(c.id, None)
        await self._unpublish(c)
        # The exit is known: answer waiters now and tear the VM down behind them
        # (libvirt needs 1-2 s for it under TCG); a new start waits for it.
        self._teardowns[c.id] = self._spawn(self._teardown(c, rt))
        await self._finish(c, status, reason)

    async def _teardown(self, c: m.Container, rt: Runtime) -> None:
        if c.auto_remove:
            await rt.machine.destroy()  # its writable disk is discarded: nothing to sync
        else:
            await rt.machine.power_off(timeout=5)
        await self._disconnect(c)
        await self._refresh_hosts()

    async def _teardown_done(self, c: m.Container) -> None:
        """Wait until the container's previous VM is gone."""
        pending = self._teardowns.pop(c.id, None)
        if pending is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)

    async def _vm_end_reason(self, c: m.Container) -> str:
        for _ in range(20):  # the libvirt event may trail the socket closing
            if c.vm in self._stop_reasons:
                break
            await asyncio.sleep(0.05)
        why = self._stop_reasons.pop(c.vm, "")
        if why == "destroyed":
            return "vm destroyed outside hyperd"
        return f"vm {why}" if why else "vm ended unexpectedly"

    async def _finish(self, c: m.Container, status: int, reason: str) -> None:
        c.state.status, c.state.exit_code = m.EXITED, status
        c.state.finished_at, c.state.reason = m.now_rfc3339(), reason
        self._exits[c.id] = self._exits.get(c.id, 0) + 1
        self._stop_reasons.pop(c.vm, None)
        log.info(
            "container %s exited with %d%s", c.id[:12], status, f" ({reason})" if reason else ""
        )
        for ex in self.execs.values():
            if ex.container == c.id and ex.running:
                ex.running, ex.exit_code = False, ex.exit_code if ex.exit_code is not None else 137
        restart = c.restart.wants_restart(status, c.state.restart_count, c.state.stopped_by_user)
        if restart:
            c.state.status = m.RESTARTING
        await self._save(c)
        if restart:
            self._spawn(self._restart_later(c))
        elif c.auto_remove:
            await self._remove(c)

    async def _restart_later(self, c: m.Container) -> None:
        delay = min(RESTART_BACKOFF[0] * (2**c.state.restart_count), RESTART_BACKOFF[1])
        await asyncio.sleep(delay)
        async with self._lock(c.id):
            if c.id not in self.containers or c.state.status != m.RESTARTING:
                return
            c.state.restart_count += 1
            try:
                await self._boot(c)
            except HyperError as exc:
                log.error("restart of %s failed: %s", c.id[:12], exc.message)
                c.state.status, c.state.error = m.EXITED, exc.message
                await self._save(c)

    # -- stop / kill / remove --------------------------------------------------------------

    async def kill(self, ref: str, signal: str | int = "SIGKILL") -> None:
        """Send a signal to the main process."""
        c = self.get(ref)
        sig = parse_signal(signal)
        rt = self.runtimes.get(c.id)
        if rt is None:
            raise Conflict(f"Container {c.id} is not running")
        c.state.stopped_by_user = True
        await rt.agent.call(p.Code.KILLCONTAINER, p.killcontainer(c.id, sig))

    async def stop(self, ref: str, timeout: float | None = None) -> bool:
        """Stop signal, then SIGKILL after ``timeout`` s, then destroy; False if not running."""
        c = self.get(ref)
        async with self._lock(c.id):
            if c.state.status == m.RESTARTING:
                c.state.stopped_by_user = True
                c.state.status = m.EXITED
                await self._save(c)
                return True
            rt = self.runtimes.get(c.id)
            if rt is None:
                return False
            c.state.stopped_by_user = True
            await self._stop_runtime(c, rt, 10 if timeout is None else timeout)
            return True

    async def _stop_runtime(self, c: m.Container, rt: Runtime, timeout: float) -> None:
        for sig, wait in ((parse_signal(c.stop_signal), timeout), (9, 5)):
            with contextlib.suppress(AgentError):
                await rt.agent.call(p.Code.KILLCONTAINER, p.killcontainer(c.id, sig))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(rt.supervisor), max(wait, 0))
                return
        await rt.machine.destroy()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(rt.supervisor), 10)

    async def restart(self, ref: str, timeout: float | None = None) -> None:
        """Stop (if running) and start again."""
        await self.stop(ref, timeout)
        await self.start(ref)

    async def remove(self, ref: str, force: bool = False) -> None:
        """Remove a container; a running one only with force (its VM is destroyed)."""
        c = self.get(ref)
        async with self._lock(c.id):
            if c.running and not force:
                raise Conflict(
                    f"You cannot remove a running container {c.id}. "
                    "Stop the container before attempting removal or force remove"
                )
            c.state.stopped_by_user = True
            rt = self.runtimes.pop(c.id, None)
            if rt is not None:
                rt.supervisor.cancel()
                await rt.machine.destroy()
                await rt.drain(1)
                await self._disconnect(c)
            await self._remove(c)

    async def _remove(self, c: m.Container) -> None:
        self.containers.pop(c.id, None)
        await asyncio.to_thread(self.state.delete, c.id)
        pending = self._teardowns.pop(c.id, None)
        self._spawn(self._delete_files(c, pending))
        output = self.outputs.pop(c.id, None)
        if output:
            output.end()
        for eid in [e.id for e in self.execs.values() if e.container == c.id]:
            del self.execs[eid]
        self.sizes.pop(c.id, None)
        self._locks.pop(c.id, None)
        async with self._changed:
            self._changed.notify_all()
        log.info("removed container %s", c.id[:12])

    async def _delete_files(self, c: m.Container, teardown: asyncio.Task | None) -> None:
        """Delete a removed container's disk and logs once its VM is gone."""
        if teardown is not None:
            with contextlib.suppress(Exception):
                await teardown
        await asyncio.to_thread(shutil.rmtree, self._dir(c), True)

    # -- wait / attach / resize / logs -----------------------------------------------------

    async def wait(self, ref: str, condition: str = "not-running") -> int:
        """Block until the condition holds; return the exit code."""
        c = self.get(ref)
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition {condition!r}")
        exits = self._exits.get(c.id, 0)

        def done() -> bool:
            if condition == "removed":
                return c.id not in self.containers
            if condition == "next-exit":
                return self._exits.get(c.id, 0) > exits and c.state.status != m.RESTARTING
            return not c.running

        async with self._changed:
            await self._changed.wait_for(done)
        return c.state.exit_code

    def output(self, ref: str) -> tuple[m.Container, Output]:
        """The container and its output fan-out (for attach)."""
        c = self.get(ref)
        return c, self.outputs.setdefault(c.id, Output())

    async def write_stdin(self, c: m.Container, data: bytes) -> None:
        """Send stdin to the main process, waiting for it to start if needed."""
        rt = await self._running_runtime(c)
        if rt is not None:
            await rt.agent.write_stdin(c.stdio_seq, data)

    async def close_stdin(self, c: m.Container) -> None:
        """EOF on the main process's stdin."""
        rt = await self._running_runtime(c)
        if rt is not None:
            with contextlib.suppress(AgentError):
                await rt.agent.close_stdin(c.stdio_seq)

    async def _running_runtime(self, c: m.Container, timeout: float = 120) -> Runtime | None:
        """The runtime of c, waiting while it is created/starting (attach before start)."""

        def ready() -> bool:
            return (
                c.id in self.runtimes or c.id not in self.containers or c.state.status == m.EXITED
            )

        async with self._changed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(ready), timeout)
        return self.runtimes.get(c.id)

    async def resize(self, ref: str, rows: int, cols: int) -> None:
        """Set the terminal size of the main process (now, or at start)."""
        c = self.get(ref)
        self.sizes[c.id] = (rows, cols)
        rt = self.runtimes.get(c.id)
        if rt is not None and c.tty:
            with contextlib.suppress(AgentError):
                await rt.agent.call(p.Code.WINSIZE, p.winsize(c.id, INIT, rows, cols))

    def logs(self, ref: str, *, tail=None, since=0.0, follow=False):
        """An async iterator of (time, stream, data) from the container's log file."""
        c = self.get(ref)
        return read_logs(
            self.log_path(c),
            tail=tail,
            since=since,
            follow=follow,
            still_running=lambda: c.running and c.id in self.containers,
        )

    # -- exec ------------------------------------------------------------------------------

    def exec_create(self, ref: str, body: dict) -> Exec:
        """Register an exec in a running container."""
        c = self.get(ref)
        if c.id not in self.runtimes or not c.running:
            raise Conflict(f"Container {c.id} is not running")
        args = _str_list(body.get("Cmd"), "Cmd")
        if not args:
            raise InvalidArgument("No exec command specified")
        ex = Exec(
            id=secrets.token_hex(32),
            container=c.id,
            args=args,
            env=_env_list(body.get("Env"), "Env"),
            workdir=body.get("WorkingDir") or "",
            user=body.get("User") or "",
            tty=bool(body.get("Tty")),
            attach_stdin=bool(body.get("AttachStdin")),
        )
        size = body.get("ConsoleSize")
        if isinstance(size, list) and len(size) == 2:
            ex.size = (int(size[0]), int(size[1]))
        self.execs[ex.id] = ex
        return ex

    def get_exec(self, eid: str) -> Exec:
        """An exec by ID."""
        ex = self.execs.get(eid)
        if ex is None:
            raise NotFound(f"No such exec instance: {eid}")
        return ex

    async def exec_start(self, eid: str, tty: bool | None = None) -> Exec:
        """Start an exec's process; its streams are in ex.io."""
        ex = self.get_exec(eid)
        if ex.running or ex.exit_code is not None:
            raise Conflict(f"exec {eid} has already been started")
        c = self.containers.get(ex.container)
        rt = self.runtimes.get(ex.container)
        if c is None or rt is None:
            raise Conflict(f"Container {ex.container} is not running")
        if tty is not None:
            ex.tty = ex.tty or tty
        agent = rt.agent
        ex.io = agent.open_process(c.id, ex.id, next(self._seq), 0 if ex.tty else next(self._seq))
        try:
            await agent.call(p.Code.EXECCMD, p.execcmd(c.id, self._process(c, ex)))
        except AgentError as exc:
            agent.forget_process(ex.io)
            ex.exit_code = 126
            raise CannotExecute(exc.message.removeprefix("agent: ")) from exc
        ex.running = True
        if not ex.attach_stdin and not ex.tty:
            await agent.close_stdin(ex.io.stdio)
        self._spawn(self._exec_done(ex, agent))
        return ex

    async def _exec_done(self, ex: Exec, agent) -> None:
        try:
            ex.exit_code = await ex.io.exited
        except AgentError:
            ex.exit_code = 137
        finally:
            ex.running = False
            # output may still be queued for a client; drop the registration shortly after
            await asyncio.sleep(1)
            agent.forget_process(ex.io)

    async def exec_resize(self, eid: str, rows: int, cols: int) -> None:
        """Set the terminal size of an exec."""
        ex = self.get_exec(eid)
        ex.size = (rows, cols)
        rt = self.runtimes.get(ex.container)
        if ex.running and ex.tty and rt is not None:
            with contextlib.suppress(AgentError):
                await rt.agent.call(p.Code.WINSIZE, p.winsize(ex.container, ex.id, rows, cols))

    # -- daemon start and stop -------------------------------------------------------------

    async def restore(self) -> None:
        """Load records; re-adopt VMs that kept running while hyperd was away."""
        for data in await asyncio.to_thread(self.state.all):
            try:
                c = m.Container.from_dict(data)
            except (TypeError, KeyError) as exc:
                log.error("skipping unreadable container record: %s", exc)
                continue
            self.containers[c.id] = c
        for cdir in self.root.iterdir():
            if cdir.name not in self.containers:  # removed while its VM was torn down
                await asyncio.to_thread(shutil.rmtree, cdir, True)
        known = {c.vm for c in self.containers.values()}
        running_vms = set(await asyncio.to_thread(self.hv.names, DOMAIN_PREFIX))
        for vm in running_vms:
            # only VMs this daemon (its root) made: other hyperds may share libvirt
            owner = await asyncio.to_thread(self.hv.metadata, vm, designer.METADATA_NS, "root")
            if vm not in known and owner == self.config.root:
                log.warning("destroying VM %s that belongs to no container", vm)
                await asyncio.to_thread(self.hv.destroy, vm)
        if self.network is not None:
            await asyncio.to_thread(self.network.setup)
        for c in list(self.containers.values()):
            if c.running:
                await self._readopt(c)
            elif c.vm in running_vms:
                log.warning("destroying VM %s of stopped container %s", c.vm, c.id[:12])
                await asyncio.to_thread(self.hv.destroy, c.vm)
        await self.reconcile_network()

    async def reconcile_network(self) -> None:
        """Drop taps, addresses and ports of containers that are not running; restore the
        proxies of those that are (they died with the previous daemon)."""
        if self.network is not None:
            live = [c.id for c in self.containers.values() if c.id in self.runtimes]
            await asyncio.to_thread(self.network.reconcile, live)
            for c in self.containers.values():
                if c.id not in self.runtimes and c.ip:
                    c.ip, c.published = "", []
                    await self._save(c)

    async def _readopt(self, c: m.Container) -> None:
        state = await asyncio.to_thread(self.hv.state, c.vm)
        if state == "running":
            rootfs = str(self.images.rootfs_path(c.image_id))
            rt = Runtime(self._machine(c, rootfs))
            try:
                await rt.machine.attach(
                    timeout=10, prepare=lambda a: rt.open_main(a, c.id, c.stdio_seq, c.stderr_seq)
                )
            except AgentError as exc:
                log.error("cannot re-attach to %s: %s", c.vm, exc.message)
                await rt.machine.destroy()
                await self._finish(c, 137, "agent unreachable after hyperd restart")
                return
            rt.start_pump(LogWriter(self.log_path(c)), self.outputs.setdefault(c.id, Output()))
            self.runtimes[c.id] = rt
            rt.supervisor = self._spawn(self._supervise(c, rt))
            log.info("re-adopted container %s in VM %s", c.id[:12], c.vm)
        else:
            await self._finish(c, 137, "vm ended while hyperd was not running")

    async def detach_all(self) -> None:
        """Daemon shutdown: leave VMs running (live restore), close agent connections."""
        for task in list(self._tasks):
            task.cancel()
        for rt in self.runtimes.values():
            if rt.pump:
                rt.pump.cancel()
            if rt.machine.agent:
                await rt.machine.agent.close()
        if self.network is not None:
            await asyncio.to_thread(self.network.close)  # proxies; taps and rules stay


def port_requests(bindings, exposed: dict, publish_all: bool) -> list[dict]:
    """Docker's PortBindings (+ -P over ExposedPorts) as a list of port requests."""
    out: list[dict] = []
    if bindings is not None and not isinstance(bindings, dict):
        raise InvalidArgument("PortBindings must be an object")
    for key, hosts in (bindings or {}).items():
        port, proto = parse_exposed(key)
        for h in hosts or [{}]:
            if not isinstance(h, dict):
                raise InvalidArgument(f"PortBindings[{key!r}] must be a list of objects")
            host_port = str(h.get("HostPort") or "0")
            if not host_port.isdigit() or int(host_port) > 65535:
                raise InvalidArgument(f"invalid host port {host_port!r} for {key}")
            out.append(
                {
                    "proto": proto,
                    "host_ip": h.get("HostIp") or "0.0.0.0",
                    "host_port": int(host_port),
                    "port": port,
                }
            )
    if publish_all:
        bound = {(r["port"], r["proto"]) for r in out}
        for key in exposed:
            port, proto = parse_exposed(key)
            if (port, proto) not in bound:
                out.append({"proto": proto, "host_ip": "0.0.0.0", "host_port": 0, "port": port})
    return out


FILTERS = {"status", "name", "id", "label", "ancestor"}


def _matches(c: m.Container, key: str, value: str) -> bool:
    if key == "status":
        return c.state.status == value
    if key == "name":
        return value.removeprefix("/") in c.name
    if key == "id":
        return c.id.startswith(value)
    if key == "label":
        k, sep, v = value.partition("=")
        return k in c.labels and (not sep or c.labels[k] == v)
    return value in (c.image, c.image_id)  # ancestor


_ADJ = ["brave", "calm", "eager", "fond", "keen", "lucid", "merry", "quiet", "sharp", "vivid"]
_NOUN = ["turing", "hopper", "lovelace", "ritchie", "thompson", "knuth", "liskov", "hamilton"]


def _random_name() -> str:
    return f"{secrets.choice(_ADJ)}_{secrets.choice(_NOUN)}_{secrets.token_hex(2)}"


async def _run(*cmd: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode:
        raise HyperError(f"{cmd[0]} failed: {err.decode(errors='replace').strip()}")
