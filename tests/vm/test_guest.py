"""The guest path against real VMs: libvirt + QEMU + HyperKernel + hyperstart.

Most tests share one VM (each runs its own processes in it); tests that end or break a
VM boot their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest

from hyperd.agent import protocol as p
from hyperd.agent.client import AgentError
from hyperd.agent.facade import Agent

pytestmark = pytest.mark.vm


def test_echo_hello(guest, loop_thread):
    res = loop_thread.run(guest.run(["echo", "hello"]))
    assert (res.stdout, res.stderr, res.status) == (b"hello\n", b"", 0)


def test_stderr_separate_and_exit_code(guest, loop_thread):
    res = loop_thread.run(guest.run(["sh", "-c", "echo out; echo err >&2; exit 3"]))
    assert (res.stdout, res.stderr, res.status) == (b"out\n", b"err\n", 3)


def test_stdin_round_trips_one_mib_exactly(guest, loop_thread):
    data = os.urandom(1 << 20)
    res = loop_thread.run(guest.run(["cat"], stdin=data))
    assert res.status == 0
    assert len(res.stdout) == len(data) and res.stdout == data


def test_flood_of_output_arrives_complete(guest, loop_thread):
    res = loop_thread.run(guest.run(["sh", "-c", "yes hyper | head -c 8000000"]))
    assert res.status == 0
    assert len(res.stdout) == 8_000_000
    assert res.stdout == (b"hyper\n" * 1_333_334)[:8_000_000]


def test_sigkill_gives_137(guest, loop_thread):
    async def scenario():
        proc = await guest.start(["sleep", "100"])
        await asyncio.sleep(0.3)
        await guest.agent.signal("c0", proc.io.process, signal.SIGKILL)
        return await proc.result()

    assert loop_thread.run(scenario()).status == 137


@pytest.mark.parametrize(
    "args, code, text",
    [
        (["no-such-binary"], 127, 'exec: "no-such-binary": executable file not found in $PATH'),
        (["/bin/no-such-binary"], 127, 'exec: "/bin/no-such-binary": no such file or directory'),
        (["/bin/notexec"], 126, 'exec: "/bin/notexec": permission denied'),
        (["/tmp"], 126, 'exec: "/tmp": permission denied'),
        (["notexec"], 126, 'exec: "notexec": permission denied'),
    ],
    ids=["not-in-path", "absolute-missing", "not-executable", "directory", "path-not-executable"],
)
def test_exec_failure_is_an_error_with_exit_code_and_no_event(guest, loop_thread, args, code, text):
    """A program that cannot start answers ERROR (Docker's text and code), no exit event."""
    a = guest.agent

    async def scenario():
        io = a.open_process("c0", f"fail-{code}-{len(args[0])}", a.new_seq(), a.new_seq())
        proc = p.Process(io.process, args, stdio=io.stdio, stderr=io.stderr)
        with pytest.raises(AgentError) as info:
            await a.exec("c0", proc)
        await a.ping()
        done, _ = await asyncio.wait({io.exited}, timeout=1.0)
        a.forget_process(io)
        return info.value, done

    err, done = loop_thread.run(scenario())
    assert (err.message, err.process_exit_code) == (text, code)
    assert not done, "a process that never started got an exit event"


def test_user_nobody_from_container_passwd(guest, loop_thread):
    res = loop_thread.run(guest.run(["id", "-u"], user="nobody"))
    assert (res.stdout, res.status) == (b"65534\n", 0)


def test_user_groups_home_and_workdir(guest, loop_thread):
    res = loop_thread.run(
        guest.run(["sh", "-c", "id -G; echo $HOME; pwd"], user="user", workdir="/tmp")
    )
    assert res.status == 0, res.stderr
    groups, home, cwd = res.stdout.decode().split("\n")[:3]
    assert set(groups.split()) == {"1000", "50"}
    assert (home, cwd) == ("/home/user", "/tmp")


def test_unknown_user_is_an_error(guest, loop_thread):
    with pytest.raises(AgentError, match="no-such-user") as info:
        loop_thread.run(guest.run(["true"], user="no-such-user"))
    assert info.value.process_exit_code is None


def test_terminal_has_requested_size(guest, loop_thread):
    res = loop_thread.run(
        guest.run(["sh", "-c", "stty size; tty"], terminal=True, rows=33, columns=101)
    )
    assert res.status == 0
    lines = res.stdout.replace(b"\r", b"").split(b"\n")
    assert lines[0] == b"33 101"
    assert lines[1].startswith(b"/dev/pts/")


def test_winsize_changes_terminal_size(guest, loop_thread):
    async def scenario():
        proc = await guest.start(
            ["sh", "-c", "read x; stty size"], terminal=True, rows=10, columns=20, close_stdin=False
        )
        await guest.agent.winsize("c0", proc.io.process, 50, 132)
        await guest.agent.write_stdin(proc.io.stdio, b"go\n")
        return await proc.result()

    res = loop_thread.run(scenario())
    assert b"50 132" in res.stdout


def test_two_processes_at_once(guest, loop_thread):
    async def scenario():
        slow = await guest.start(["sh", "-c", "read line; echo got $line"], close_stdin=False)
        fast = await guest.run(["echo", "fast"])
        await guest.agent.write_stdin(slow.io.stdio, b"ping\n")
        await guest.agent.close_stdin(slow.io.stdio)
        return fast, await slow.result()

    fast, slow = loop_thread.run(scenario())
    assert (fast.stdout, fast.status) == (b"fast\n", 0)
    assert (slow.stdout, slow.status) == (b"got ping\n", 0)


@pytest.mark.parametrize(
    "frame",
    [
        p.encode_control(p.Code.EXECCMD, b"{not json"),
        p.encode_control(99, b"{}"),
        p.encode_control(p.Code.EXECCMD, b'{"container": 5, "process": []}'),
        p.encode_control(p.Code.EXECCMD, b'{"container": "nope", "process": {"args": ["x"]}}'),
        p.encode_control(p.Code.NEXT, b""),
        p.CONTROL_HEADER.pack(p.Code.PING, 3),
    ],
    ids=["bad-json", "unknown-code", "wrong-types", "unknown-container", "next", "short-length"],
)
def test_malformed_frames_get_error_and_agent_survives(guest, loop_thread, frame):
    acked, message = loop_thread.run(guest.client.send_raw(frame))
    assert not acked
    assert json.loads(message)["message"]  # ERROR is a JSON object with a message
    loop_thread.run(guest.agent.ping())


def test_oversized_frame_is_skipped_exactly(guest, loop_thread):
    size = p.MAX_CONTROL_FRAME + 1
    frame = p.CONTROL_HEADER.pack(p.Code.PING, size) + b"\0" * (size - 8)
    acked, _ = loop_thread.run(guest.client.send_raw(frame))
    assert not acked
    loop_thread.run(guest.agent.ping())


def test_writefile_readfile_4mib(guest, loop_thread):
    data = os.urandom(4 << 20)
    loop_thread.run(guest.agent.write_file("c0", "/tmp/big", data))
    back = loop_thread.run(guest.agent.read_file("c0", "/tmp/big"))
    assert back == data
    res = loop_thread.run(guest.run(["wc", "-c", "/tmp/big"]))
    assert res.stdout.split()[0] == str(4 << 20).encode()


def test_ps_lists_the_containers_processes(guest, loop_thread):
    """PS: a sleep started here, with its details; never the agent itself."""

    async def scenario():
        before = time.time()
        sleeper = await guest.start(["sleep", "1000"])
        tty = await guest.start(["sleep", "999"], terminal=True)
        procs = await guest.agent.processes("c0")
        for proc in (sleeper, tty):
            await guest.agent.signal("c0", proc.io.process, signal.SIGKILL)
            await proc.result()
        return before, procs

    before, procs = loop_thread.run(scenario())
    by_args = {tuple(x.args): x for x in procs}
    sleep = by_args[("sleep", "1000")]
    assert (sleep.uid, sleep.gid, sleep.state, sleep.tty) == (0, 0, "S", "")
    assert sleep.ppid == 1 and sleep.rss > 0 and sleep.vsz >= sleep.rss
    assert abs(sleep.start_time - before) < 120  # the guest's clock, from the host's RTC
    assert sleep.cpu_time_ms >= 0
    assert by_args[("sleep", "999")].tty.startswith("pts/")
    assert all(x.pid != 1 for x in procs)


def test_ps_of_an_unknown_container_is_an_error(guest, loop_thread):
    with pytest.raises(AgentError, match="no container nope"):
        loop_thread.run(guest.agent.processes("nope"))


def test_sync_the_guest_and_a_container(guest, loop_thread):
    loop_thread.run(guest.agent.sync())
    loop_thread.run(guest.agent.sync("c0"))
    with pytest.raises(AgentError, match="no container nope"):
        loop_thread.run(guest.agent.sync("nope"))


def _guest_clock(guest, loop_thread) -> int:
    res = loop_thread.run(guest.run(["date", "+%s"]))
    assert res.status == 0, res.stderr
    return int(res.stdout)


def test_startpod_sets_the_wall_clock(guest, loop_thread):
    """STARTPOD's "time" becomes the guest's CLOCK_REALTIME (a restored template's clock
    is stale); the daemon's start_pod sends the host's, with a seed the agent accepts."""
    name = guest.machine.spec.name
    year_ago = time.time_ns() - 365 * 86400 * 10**9
    try:
        loop_thread.run(
            guest.agent.client.call(p.Code.STARTPOD, p.startpod(name, time_ns=year_ago))
        )
        assert abs(_guest_clock(guest, loop_thread) - year_ago // 10**9) <= 5
    finally:
        loop_thread.run(guest.agent.start_pod(name))
    assert abs(_guest_clock(guest, loop_thread) - time.time()) <= 5


@pytest.mark.parametrize(
    "fields, text",
    [
        ({"seed": "abc"}, 'field "seed": expected an even number of hex digits'),
        ({"seed": "zz"}, 'field "seed": not a hex digit'),
        ({"seed": "00" * 257}, 'field "seed": expected an even number of hex digits, at most 512'),
        ({"seed": 12}, 'field "seed": expected a string'),
        ({"time": "now"}, 'field "time": expected an integer'),
        ({"time": 1.5e18}, 'field "time": expected an integer'),
        ({"time": -1}, 'field "time": expected nanoseconds'),
    ],
    ids=[
        "odd-length",
        "not-hex",
        "too-long",
        "seed-not-string",
        "time-string",
        "time-float",
        "time-negative",
    ],
)
def test_startpod_refuses_a_bad_time_or_seed(guest, loop_thread, fields, text):
    payload = {**p.startpod(guest.machine.spec.name), **fields}
    with pytest.raises(AgentError) as info:
        loop_thread.run(guest.agent.client.call(p.Code.STARTPOD, payload))
    assert text in str(info.value)
    loop_thread.run(guest.agent.ping())


def test_reconnect_keeps_the_agent(boot, loop_thread):
    guest = boot()
    machine = guest.machine

    async def scenario():
        await machine.agent.close()
        guest.agent = Agent(await machine.attach(timeout=10))
        return await guest.run(["echo", "again"])

    assert loop_thread.run(scenario()).stdout == b"again\n"


def test_destroypod_powers_off(boot, loop_thread):
    guest = boot()
    machine = guest.machine
    loop_thread.run(guest.agent.destroy_pod())
    loop_thread.run(machine._wait_gone(30))
    assert machine.hv.state(machine.name) is None
