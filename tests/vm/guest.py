"""A test VM: a busybox root disk, a booted machine, and a container to run processes in."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from hyperd.agent import protocol as p
from hyperd.agent.facade import Agent
from hyperd.vm import accel, designer
from hyperd.vm.machine import Machine
from hyperd.vm.users import VMUsers
from hyperd.vm.virt import Hypervisor

CONTAINER = "c0"


def build_busybox_disk(workdir: Path) -> Path:
    """An ext4 image of a tiny root: busybox-static, users root and nobody, odd files."""
    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "root"
    for d in ("bin", "etc", "tmp", "root", "home/user"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    subprocess.run(
        [str(root / "bin" / "busybox"), "--install", "-s", str(root / "bin")], check=True
    )
    for link in (root / "bin").iterdir():
        if link.is_symlink():
            link.unlink()
            link.symlink_to("busybox")
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "user:x:1000:1000:user:/home/user:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (root / "etc" / "group").write_text(
        "root:x:0:\nuser:x:1000:\nstaff:x:50:user\nnogroup:x:65534:\n"
    )
    (root / "bin" / "notexec").write_text("#!/bin/sh\necho should not run\n")
    (root / "bin" / "notexec").chmod(0o644)
    (root / "tmp").chmod(0o1777)
    _seed(root / "srv" / "seed")
    image = workdir / "busybox.ext4"
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-d", str(root), str(image), "32M"],
        check=True,
    )
    return image


# What populate tests expect to find copied from the image's /srv/seed.
SEED_TEXT = b"seeded by the image\n"


def _seed(seed: Path) -> None:
    """Image content for volume populate tests: modes, owners, a symlink, an xattr."""
    (seed / "sub").mkdir(parents=True, exist_ok=True)
    (seed / "a.txt").write_bytes(SEED_TEXT)
    (seed / "a.txt").chmod(0o640)
    os.chown(seed / "a.txt", 1000, 50)
    os.setxattr(seed / "a.txt", "user.origin", b"image")
    (seed / "sub").chmod(0o700)
    os.chown(seed / "sub", 1000, 1000)
    if not (seed / "link").is_symlink():
        (seed / "link").symlink_to("a.txt")


def new_rw_disk(path: Path, size: str = "64M", content: Path | None = None) -> Path:
    """An ext4 disk: empty (a container's writable layer), or holding content's files."""
    extra = ["-d", str(content)] if content is not None else []
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-O", "^has_journal", *extra, str(path), size], check=True
    )
    return path


@dataclass
class Result:
    stdout: bytes
    stderr: bytes
    status: int


class Proc:
    """A process started in the guest."""

    def __init__(self, guest: Guest, io, terminal: bool):
        self.guest, self.io, self.terminal = guest, io, terminal
        self._out = asyncio.ensure_future(io.stdout_stream.read_all())
        err = io.stderr_stream
        self._err = asyncio.ensure_future(err.read_all() if err else _empty())

    async def result(self) -> Result:
        out, err = await asyncio.gather(self._out, self._err)
        status = await self.io.exited
        self.guest.agent.forget_process(self.io)
        return Result(out, err, status)


async def _empty() -> bytes:
    return b""


class Guest:
    """A booted VM with container CONTAINER set up; start processes in it.

    In a privileged container (``privileged``) processes are privileged too unless a
    test gives them a ``security`` of their own.
    """

    _ids = itertools.count(1)

    def __init__(self, machine: Machine, privileged: bool = False):
        self.machine = machine
        self.agent = Agent(machine.agent)
        self.privileged = privileged

    @property
    def client(self):
        """The raw AgentClient (for malformed frames)."""
        return self.machine.agent

    async def start(self, args, stdin=b"", close_stdin=True, container=CONTAINER, **kw) -> Proc:
        """EXECCMD a process; stdin is sent, then EOF unless close_stdin is False."""
        a = self.agent
        terminal = kw.get("terminal", False)
        out_seq, err_seq = a.new_seq(), (0 if terminal else a.new_seq())
        pid = f"p{next(self._ids)}"
        if self.privileged:
            kw.setdefault("security", p.Security(privileged=True))
        io = a.open_process(container, pid, out_seq, err_seq)
        proc = p.Process(pid, list(args), stdio=out_seq, stderr=err_seq, **kw)
        try:
            await a.exec(container, proc)
        except BaseException:
            a.forget_process(io)
            raise
        if stdin:
            await a.write_stdin(out_seq, stdin)
        if close_stdin:
            await a.close_stdin(out_seq)
        return Proc(self, io, terminal)

    async def run(self, args, stdin=b"", **kw) -> Result:
        """Run a process to completion."""
        return await (await self.start(args, stdin, **kw)).result()


async def boot_guest(
    name: str,
    assets,
    image: Path,
    workdir: Path,
    extra_disks=(),
    memory_mib: int = 0,
    privileged: bool = False,
    users: VMUsers | None = None,
) -> Guest:
    """Boot a VM with `image` as read-only root image, a fresh writable disk (the
    container CONTAINER on them, privileged if asked) and ``extra_disks`` (DiskSpecs)
    after them; with ``users``, QEMU runs as a user of its own as under hyperd."""
    rw = new_rw_disk(workdir / f"{name}-rw.ext4")
    run_dir = Path("/run/hyper-test") / name
    spec = designer.VMSpec(
        name=name,
        uuid=str(uuid.uuid4()),
        kernel=assets.kernel,
        initrd=assets.initrd,
        control_socket=str(run_dir / "control.sock"),
        stream_socket=str(run_dir / "stream.sock"),
        console_log=str(workdir / f"{name}.console.log"),
        disks=[
            designer.DiskSpec(str(image), "image", readonly=True),
            designer.DiskSpec(str(rw), "rw"),
            *extra_disks,
        ],
    )
    if memory_mib:
        spec.memory_mib = memory_mib
    machine = Machine(
        Hypervisor(),
        spec,
        accel.domain_type(accel.choose()),
        designer.DEFAULT_TB_CACHE_MIB,
        users,
    )
    await machine.boot(timeout=60)
    guest = Guest(machine, privileged)
    try:
        await guest.agent.start_pod(name)
        mounts = p.root_mounts("image", "ext4", "rw")
        await guest.agent.create_container(CONTAINER, mounts, privileged=privileged)
    except BaseException:
        await machine.destroy()
        raise
    return guest
