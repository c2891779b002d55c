"""A container cannot reach past itself in its VM: real VMs, the agent's namespaces,
capabilities, seccomp filter and /dev, probed from inside.

The module's VM holds container c0 (no main process: a holder is its PID 1) and, per
test, containers with a main process. ``probe`` (probe.c, built here) makes the calls a
hostile process would.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess

import pytest

from hyperd.agent import protocol as p
from hyperd.agent.client import AgentError

from .guest import CONTAINER

pytestmark = pytest.mark.vm

DOCKER_CAPS = "00000000a80425fb"  # Docker's default set, as /proc/<pid>/status shows it
ALL_CAPS = "000001ffffffffff"  # every capability of Linux 6.1
SAFE_DEV = {"core", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin"}
SAFE_DEV |= {"stdout", "tty", "urandom", "zero"}


@pytest.fixture(scope="module")
def probe(shared_guest, loop_thread, vm_workdir):
    """probe.c, static, written into c0 as /probe."""
    src = __file__.replace("test_isolation.py", "probe.c")
    out = vm_workdir / "probe"
    subprocess.run(["cc", "-static", "-O2", "-o", str(out), src], check=True)
    loop_thread.run(shared_guest.agent.write_file(CONTAINER, "/probe", out.read_bytes(), 0o755))
    return "/probe"


# An ACK nobody asked for: the host would fence the guest if it ever got through.
FORGED = "ACK='\\0\\0\\0\\011\\0\\0\\0\\010'\n"


def sh(guest, loop_thread, script: str, **kw):
    res = loop_thread.run(guest.run(["sh", "-c", FORGED + script], **kw))
    return res.status, res.stdout.decode(), res.stderr.decode()


def status_field(guest, loop_thread, name: str, **kw) -> str:
    """A line of /proc/self/status of a process started with ``kw``."""
    _, out, _ = sh(guest, loop_thread, f"grep '^{name}:' /proc/self/status", **kw)
    return out.split(":", 1)[1].strip()


@pytest.fixture
def main_container(guest, loop_thread):
    """Start containers with a main process in the module's VM; removed after the test."""
    made = []

    async def create(cid: str, args: list[str], **kw):
        a = guest.agent
        io = a.open_process(cid, "init", a.new_seq(), a.new_seq())
        proc = p.Process("init", args, stdio=io.stdio, stderr=io.stderr)
        await a.create_container(cid, p.root_mounts("image", "ext4"), proc, **kw)
        await a.close_stdin(io.stdio)
        return io

    def make(cid: str, args: list[str], **kw):
        io = loop_thread.run(create(cid, args, **kw))
        made.append((cid, io))
        return io

    yield make
    for cid, io in made:
        loop_thread.run(guest.agent.remove_container(cid))
        guest.agent.forget_process(io)


# -- namespaces --------------------------------------------------------------------------


def test_a_container_sees_only_its_own_processes(guest, loop_thread):
    """PID 1 is the container's (a holder, 'pause', here); the agent and the guest's
    kernel threads are not in its /proc."""
    code, out, _ = sh(guest, loop_thread, "echo $$; tr -d '\\0' < /proc/1/cmdline; echo; ls /proc")
    assert code == 0
    lines = out.split("\n")
    me, init = int(lines[0]), lines[1]
    pids = sorted(int(x) for x in lines[2:] if x.isdigit())
    assert init == "pause"
    assert pids[0] == 1 and me in pids and len(pids) <= 4  # pause, sh, ls (and a zombie)


def test_execs_join_the_containers_namespaces_and_containers_do_not_share(
    guest, loop_thread, main_container
):
    main_container("iso1", ["sleep", "1000"], sysctl={"kernel.shmmax": "1234567"})
    script = "for n in pid mnt ipc uts; do readlink /proc/self/ns/$n; done"
    ns = {}
    for cid in (CONTAINER, "iso1"):
        first = sh(guest, loop_thread, script, container=cid)[1]
        again = sh(guest, loop_thread, script, container=cid)[1]
        assert first == again  # every exec joins the same namespaces
        ns[cid] = first.split()
    assert all(a != b for a, b in zip(ns[CONTAINER], ns["iso1"], strict=True))
    code, out, _ = sh(guest, loop_thread, "cat /proc/1/cmdline | tr '\\0' ' '", container="iso1")
    assert out == "sleep 1000 "  # the main process is PID 1
    # the sysctl was set in iso1's IPC namespace only
    assert sh(guest, loop_thread, "cat /proc/sys/kernel/shmmax", container="iso1")[1] == "1234567\n"
    assert sh(guest, loop_thread, "cat /proc/sys/kernel/shmmax")[1] != "1234567\n"


def test_pid_1_ignores_sigterm_without_a_handler_and_dies_of_sigkill_with_its_execs(
    guest, loop_thread, main_container
):
    """As in Docker: `docker stop` of such a process goes through the SIGKILL step, and
    when PID 1 ends every other process of the container ends with it."""
    io = main_container("iso2", ["sleep", "1000"])
    a = guest.agent

    async def scenario():
        await a.kill_container("iso2", signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert not io.exited.done()
        other = await guest.start(["sleep", "1000"], container="iso2")
        await a.kill_container("iso2", signal.SIGKILL)
        main = await asyncio.wait_for(io.exited, 10)
        return main, (await asyncio.wait_for(other.result(), 10)).status

    assert loop_thread.run(scenario()) == (137, 137)


def test_pid_1_with_a_handler_gets_the_signal(guest, loop_thread, main_container):
    io = main_container("iso3", ["sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done"])

    async def scenario():
        await asyncio.sleep(0.5)  # the trap is set
        await guest.agent.kill_container("iso3", signal.SIGTERM)
        return await asyncio.wait_for(io.exited, 10)

    assert loop_thread.run(scenario()) == 7


# -- capabilities, no_new_privs, seccomp ---------------------------------------------------


def test_processes_get_dockers_defaults(guest, loop_thread):
    assert status_field(guest, loop_thread, "CapBnd") == DOCKER_CAPS
    assert status_field(guest, loop_thread, "CapEff") == DOCKER_CAPS
    assert status_field(guest, loop_thread, "CapEff", user="nobody") == "0" * 16
    assert status_field(guest, loop_thread, "CapBnd", user="nobody") == DOCKER_CAPS
    assert status_field(guest, loop_thread, "NoNewPrivs") == "0"
    assert status_field(guest, loop_thread, "Seccomp") == "2"


@pytest.mark.parametrize(
    "security, field, expected",
    [
        (p.Security(cap_add=["NET_ADMIN"]), "CapBnd", "00000000a80435fb"),
        (p.Security(cap_drop=["chown", "CAP_KILL"]), "CapBnd", "00000000a80425da"),
        (p.Security(cap_drop=["ALL"], cap_add=["SYS_TIME"]), "CapBnd", "0000000002000000"),
        (p.Security(cap_add=["ALL"], cap_drop=["SYS_BOOT"]), "CapBnd", "000001ffffbfffff"),
        (p.Security(privileged=True), "CapEff", ALL_CAPS),
        (p.Security(privileged=True), "Seccomp", "0"),
        (p.Security(seccomp=False), "Seccomp", "0"),
        (p.Security(no_new_privileges=True), "NoNewPrivs", "1"),
    ],
    ids=["add", "drop", "drop-all", "add-all", "privileged", "priv-seccomp", "unconfined", "nnp"],
)
def test_security_settings(guest, loop_thread, security, field, expected):
    assert status_field(guest, loop_thread, field, security=security) == expected


def test_an_unknown_capability_is_refused(guest, loop_thread):
    with pytest.raises(AgentError, match='field "capAdd": unknown capability "CAP_NOPE"'):
        loop_thread.run(guest.run(["true"], security=p.Security(cap_add=["CAP_NOPE"])))


def test_no_new_privileges_stops_setuid(guest, loop_thread, probe):
    """A setuid-root program gives root to nobody, unless no_new_privs is set."""
    assert sh(guest, loop_thread, f"cp {probe} /tmp/suid && chmod 4755 /tmp/suid")[0] == 0
    assert sh(guest, loop_thread, "/tmp/suid euid", user="nobody")[1] == "0\n"
    nnp = p.Security(no_new_privileges=True)
    assert sh(guest, loop_thread, "/tmp/suid euid", user="nobody", security=nnp)[1] == "65534\n"


def test_dangerous_syscalls_fail_with_eperm(guest, loop_thread, probe):
    res = loop_thread.run(guest.run([probe, "syscalls"]))
    results = dict(line.split() for line in res.stdout.decode().splitlines())
    assert results.pop("clone3") == "ENOSYS"  # so that libc falls back to clone
    assert results.pop("fork") == "ok"
    assert results == dict.fromkeys(results, "EPERM"), results


def test_with_cap_sys_admin_the_filter_lets_mount_through(guest, loop_thread, probe):
    """As Docker's profile: a syscall a capability guards is allowed with it (mount
    fails for another reason here: the container's mounts are its own)."""
    sec = p.Security(cap_add=["SYS_ADMIN"])
    res = loop_thread.run(guest.run([probe, "syscalls"], security=sec))
    results = dict(line.split() for line in res.stdout.decode().splitlines())
    assert results["mount"] == "ok" and results["umount2"] == "EINVAL"
    assert results["keyctl"] == "EPERM" and results["io_uring_setup"] == "EPERM"


# -- the guest out of reach ---------------------------------------------------------------


def test_the_guest_cannot_be_halted_nor_its_init_stopped(guest, loop_thread):
    for cmd in ("halt -f", "reboot -f", "poweroff -f"):
        code, _, err = sh(guest, loop_thread, cmd)
        assert code != 0 and "Operation not permitted" in err
    code, out, _ = sh(guest, loop_thread, "kill -STOP 1; kill -KILL 1; sleep 0.2; cat /proc/1/stat")
    assert code == 0 and out.split()[2] == "S"  # PID 1 of the container sleeps on, unharmed
    loop_thread.run(guest.agent.ping())


def test_pid_1_and_the_agent_cannot_be_traced_or_read(guest, loop_thread, probe):
    res = loop_thread.run(guest.run([probe, "ptrace", "1"]))
    assert res.stdout == b"EPERM\n"
    code, _, err = sh(guest, loop_thread, "ls /proc/1/root/ && cat /proc/1/environ")
    assert code != 0 and "Permission denied" in err
    # nothing in the container's /proc is the agent
    _, out, _ = sh(guest, loop_thread, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert "/init" not in out


def test_disks_and_virtio_ports_cannot_be_opened(guest, loop_thread):
    """The container may mknod (CAP_MKNOD, as Docker), but its mounts are nodev: neither
    the raw disks nor the agent's ports open, so no frame can be forged."""
    script = """
    set -e
    mknod /dev/vda b $(tr : ' ' < /sys/block/vda/dev)
    for port in /sys/class/virtio-ports/*; do
        mknod /dev/$(basename $port) c $(tr : ' ' < $port/dev)
    done
    mknod /tmp/vda b $(tr : ' ' < /sys/block/vda/dev)
    ls /dev/vport* >/dev/null
    for node in /dev/vda /tmp/vda; do head -c 1 $node && echo "read $node"; done
    for port in /dev/vport*; do printf "$ACK" > $port && echo "wrote $port"; done
    rm /dev/vda /dev/vport* /tmp/vda
    """
    code, out, err = sh(guest, loop_thread, script)
    assert code == 0 and out == ""
    assert err.count("Permission denied") == 4  # two disks, two ports
    loop_thread.run(guest.agent.ping())  # the agent heard nothing forged


def test_a_privileged_container_still_cannot_take_the_agents_ports(
    guest, loop_thread, main_container
):
    """Even with every capability and dev mounts, a port the agent holds is busy."""
    main_container("iso4", ["sleep", "1000"], privileged=True)
    script = """
    for port in /sys/class/virtio-ports/*; do
        mknod /dev/$(basename $port) c $(tr : ' ' < $port/dev)
        printf "$ACK" > /dev/$(basename $port) && echo "wrote $port"
    done
    """
    sec = p.Security(privileged=True)
    code, out, err = sh(guest, loop_thread, script, container="iso4", security=sec)
    assert out == "" and err.count("Device or resource busy") == 2
    loop_thread.run(guest.agent.ping())


def test_no_way_out_of_the_root(guest, loop_thread, probe):
    """The chroot escape (CAP_SYS_CHROOT is Docker's default) ends in the container's own
    root: it is mounted on the root of its mount namespace, above which ".." goes nowhere;
    the agent, the guest's /dev and the other containers are not there."""
    res = loop_thread.run(guest.run(["sh", "-c", f"cd /tmp && {probe} escape"]))
    lines = dict(line.partition(" ")[::2] for line in res.stdout.decode().splitlines())
    assert lines["chroot-out"] == "ok"
    assert {"probe", "bin", "etc"} <= set(lines["root:"].split())  # the container's root
    assert not {"agent", "init", "run"} & set(lines["root:"].split())
    assert lines["open-vda"] == "ENOENT" and lines["open-agent"] == "ENOENT"


def test_dev_proc_and_sys_as_in_docker(guest, loop_thread):
    code, out, _ = sh(guest, loop_thread, "ls /dev")
    assert set(out.split()) == SAFE_DEV
    for path in ("/proc/sys/kernel/panic", "/sys/block/vda/queue/read_ahead_kb"):
        code, _, err = sh(guest, loop_thread, f"echo 1 > {path}")
        assert code != 0 and "Read-only file system" in err
    assert sh(guest, loop_thread, "ls /sys/firmware | wc -l")[1] == "0\n"
    assert sh(guest, loop_thread, "echo ok > /dev/null && head -c 4 /dev/zero | wc -c")[1] == "4\n"
