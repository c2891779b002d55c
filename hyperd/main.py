"""hyperd: the daemon. Serves the API on a unix socket; VMs outlive it (live restore).

SIGTERM or SIGINT stop the daemon but leave containers running: libvirt owns their VMs,
and the next hyperd re-attaches to them, so logs and `hyper ps` continue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import grp
import logging
import logging.handlers
import os
import resource
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web

from hyperd.api.listener import Listener
from hyperd.api.server import make_app
from hyperd.config import Config
from hyperd.containers.logs import log_limits
from hyperd.containers.service import ContainerService
from hyperd.errors import HyperError
from hyperd.events import EventBus
from hyperd.images.limits import ImageLimits
from hyperd.images.service import ImageService
from hyperd.logfilter import RepeatFilter
from hyperd.network import Network, parse_pools
from hyperd.sandbox import Sandboxes
from hyperd.state import StateStore
from hyperd.vm import ksm, virt
from hyperd.vm import users as vm_users
from hyperd.vm.machine import sweep_users
from hyperd.volumes import VolumeStore

log = logging.getLogger("hyperd")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags (each overrides the config file)."""
    ap = argparse.ArgumentParser(prog="hyperd", description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="config file (default /etc/hyper/config)")
    ap.add_argument("--root", help="state directory (default /var/lib/hyper)")
    ap.add_argument("--socket", help="API socket (default /run/hyper/hyperd.sock)")
    ap.add_argument("--accel", choices=["auto", "kvm", "tcg"], help="accelerator")
    ap.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    ap.add_argument("--syslog", action="store_true", help="log to syslog as well as stderr")
    return ap.parse_args(argv)


def setup_logging(level: str, syslog: bool) -> None:
    """Logs to stderr (and syslog when asked) with levels."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if syslog and os.path.exists("/dev/log"):
        handlers.append(logging.handlers.SysLogHandler("/dev/log"))
    for handler in handlers:
        handler.addFilter(RepeatFilter())
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
    )
    logging.getLogger("virEventAsyncIOImpl").setLevel(logging.INFO)


def _lock(run_dir: Path):
    """One daemon per run dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    f = open(run_dir / "hyperd.lock", "w")  # noqa: SIM115 - held for the daemon's life
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise HyperError(f"another hyperd is running (lock {run_dir / 'hyperd.lock'})") from None
    return f


def _prepare_socket(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(path))
            raise HyperError(f"{path} is in use by another server")
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)
        finally:
            probe.close()


def secure_dirs(root: Path, run_dir: Path) -> None:
    """Keep containers' data and secrets from local users, as Docker keeps /var/lib/docker
    0710: the root and the VMs' run dir are root:<qemu group> 0710, so QEMU reaches its files
    by path and nobody else can even list them. The run dir stays traversable (0711) for the
    API socket, whose own mode decides who talks to the daemon."""
    gid = vm_users.qemu_gid()
    vms = run_dir / "vms"
    for path in (root, run_dir, vms):
        path.mkdir(parents=True, exist_ok=True)
    if gid is None:  # QEMU runs as root (or an unknown user): traversal for all, no listing
        log.warning("no %s group: the daemon root is 0711", " or ".join(vm_users.QEMU_GROUPS))
    for path, mode in ((root, 0o710), (vms, 0o710)):
        os.chown(path, 0, gid or 0)
        os.chmod(path, mode if gid is not None else 0o711)
    os.chown(run_dir, 0, 0)
    os.chmod(run_dir, 0o711)


def _secure_socket(path: Path) -> None:
    """0660, root:root, or root:hyper when a 'hyper' group exists."""
    try:
        gid = grp.getgrnam("hyper").gr_gid
    except KeyError:
        gid = 0
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)


#: Descriptors kept for everything but API connections (VM consoles, logs, disks, libvirt).
RESERVED_FDS = 512


def raise_fd_limit() -> int:
    """Lift the soft descriptor limit to the hard one, as dockerd's unit does; the soft
    limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def connection_cap(configured: int) -> int:
    """``max_connections``, kept below the descriptor limit so accepting can never take the
    descriptors the daemon's VMs and files need."""
    limit = raise_fd_limit()
    cap = max(16, min(configured, limit - RESERVED_FDS, limit // 2))
    if cap < configured:
        log.info("max_connections %d lowered to %d (descriptor limit %d)", configured, cap, limit)
    return cap


async def wait_for_libvirt(hv: virt.Hypervisor, timeout: float) -> None:
    """Wait for libvirtd to answer (it may start after us), as dockerd waits for containerd."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    told = 0.0
    while True:
        try:
            await asyncio.to_thread(hv.names)
            return
        except HyperError as exc:
            if loop.time() >= deadline:
                raise HyperError(
                    f"libvirtd did not answer at {hv.uri} within {timeout:.0f} s: {exc.message}"
                ) from None
            if loop.time() - told >= 10:
                log.warning("waiting for libvirtd at %s (%s)", hv.uri, exc.message)
                told = loop.time()
        await asyncio.sleep(0.5)


# Threads for blocking work (libvirt, disks, netlink). Python's default (cores + 4) would
# let a few calls stuck on one sick VM (a QEMU that is slow to die) hold up every other
# container's work.
WORKER_THREADS = 64


async def serve(config: Config) -> None:
    """Run the daemon until SIGTERM/SIGINT."""
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="hyperd")
    )
    log_limits(config.log_opts)  # a bad default in the config stops the daemon here, clearly
    lock = _lock(Path(config.run_dir))
    secure_dirs(Path(config.root), Path(config.run_dir))
    virt.use_asyncio_events()
    hv = virt.Hypervisor(config.libvirt_uri)
    await wait_for_libvirt(hv, config.libvirt_wait)
    if config.ksm:
        try:
            log.info("%s", await asyncio.to_thread(ksm.enable))
        except OSError as exc:
            log.warning("cannot turn KSM on: %s", exc)
    state = StateStore(Path(config.root) / "state.db")
    service: ContainerService | None = None
    images = ImageService(
        config.root,
        {
            "mirrors": config.mirrors,
            "insecure_registries": config.insecure_registries,
            "limits": ImageLimits.from_config(config.image_limits),
        },
        in_use=lambda image_id: service is not None and service.image_in_use(image_id),
    )
    network = None
    if config.bridge:  # bridge = "" runs without networking: containers get loopback only
        network = Network(
            config.bridge,
            config.subnet,
            db_path=Path(config.root) / "network.db",
            pools_=parse_pools(config.default_address_pools),
        )
    events = EventBus()
    sandboxes = Sandboxes(config, hv, network)
    loop = asyncio.get_running_loop()
    images.on_rootfs_removed = lambda: loop.call_soon_threadsafe(sandboxes.pool.prune)
    volumes = VolumeStore(config.root, config.volume_size)
    service = ContainerService(config, images, sandboxes, state, events, volumes)
    hv.on_stopped(sandboxes.vm_stopped)
    await service.restore()
    own_users = await asyncio.to_thread(vm_users.of, config)
    if own_users is not None:  # the VMs restore did not take up are gone by now
        await sweep_users(hv, own_users, await sandboxes.running_vms())
    await sandboxes.start_pool()

    runner = web.AppRunner(
        make_app(service, images, events), handle_signals=False, shutdown_timeout=5
    )
    await runner.setup()
    sock = Path(config.socket)
    _prepare_socket(sock)
    listener = Listener(runner, sock, connection_cap(config.max_connections))
    await listener.start()
    _secure_socket(sock)
    log.info("hyperd listening on %s (accel %s, root %s)", sock, sandboxes.accel, config.root)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down; containers keep running (live restore)")
    await listener.close()
    await runner.cleanup()
    await service.shutdown()
    await sandboxes.close()
    sock.unlink(missing_ok=True)
    state.close()
    hv.close()
    lock.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hyperd` command."""
    args = parse_args(argv)
    try:
        config = Config.load(args.config)
        for key in ("root", "socket", "accel", "log_level"):
            if getattr(args, key):
                setattr(config, key, getattr(args, key))
        setup_logging(config.log_level, args.syslog)
        if os.geteuid() != 0:
            raise HyperError("hyperd must run as root")
        asyncio.run(serve(config))
    except HyperError as exc:
        print(f"hyperd: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
