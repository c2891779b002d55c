"""The host's agent client against a hostile guest, over real unix sockets.

A fake guest serves the two channels; it says READY and answers GETVERSION like the real
agent, then sends what each test wants: oversized, malformed or unasked frames, floods,
frames for processes that do not exist, or nothing at all. The client must fence a guest
that breaks the protocol (channels closed, every waiter failed), keep its memory bounded,
and go on working when the guest only sends what it may drop. A hypothesis fuzz test feeds
random bytes and random frames.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperd.agent import client as agent_client
from hyperd.agent import protocol as p
from hyperd.agent.client import AgentClient, AgentError, AgentTimeout, AgentUnresponsive


class FakeGuest:
    """Both channels of a guest, scripted by the test."""

    def __init__(self, tmp: Path):
        self.paths = (str(tmp / "control.sock"), str(tmp / "stream.sock"))
        self.conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = [None, None]
        self.connected = asyncio.Event()
        self.servers = []

    async def start(self) -> None:
        for i, path in enumerate(self.paths):

            async def accept(reader, writer, i=i):
                self.conns[i] = (reader, writer)
                if all(self.conns):
                    self.connected.set()

            self.servers.append(await asyncio.start_unix_server(accept, path))

    @property
    def ctl(self) -> asyncio.StreamWriter:
        return self.conns[0][1]

    @property
    def streams(self) -> asyncio.StreamWriter:
        return self.conns[1][1]

    async def command(self) -> tuple[int, bytes]:
        """The next command the host sent."""
        reader = self.conns[0][0]
        code, size = p.decode_control_header(await reader.readexactly(8))
        return code, await reader.readexactly(size)

    async def answer(self, payload: bytes = b"", code: int = p.Code.ACK) -> None:
        self.ctl.write(p.encode_control(code, payload))
        await self.ctl.drain()

    async def handshake(self) -> None:
        await self.connected.wait()
        await self.answer(code=p.Code.READY)
        code, _ = await self.command()
        assert code == p.Code.GETVERSION
        await self.answer(p.json_payload({"version": p.API_VERSION}))

    async def close(self) -> None:
        for conn in self.conns:
            if conn is not None:
                conn[1].transport.abort()
        for server in self.servers:
            server.close()


async def _pair(tmp: Path) -> tuple[FakeGuest, AgentClient, list[str]]:
    guest = FakeGuest(tmp)
    await guest.start()
    client = AgentClient(*guest.paths)
    fences: list[str] = []
    client.on_fence = fences.append
    await asyncio.gather(client.connect(timeout=5), guest.handshake())
    return guest, client, fences


def run(scenario, timeout: float = 30):
    """Run ``scenario(guest, client, fences)`` against a fresh pair; always clean up."""

    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            guest, client, fences = await _pair(Path(tmp))
            try:
                return await asyncio.wait_for(scenario(guest, client, fences), timeout)
            finally:
                await client.close()
                await guest.close()

    return asyncio.run(main())


async def _until(predicate, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def _still_works(guest: FakeGuest, client: AgentClient) -> None:
    """A PING round trip: the client is connected and in step with the guest."""
    ping = asyncio.ensure_future(client.ping())
    code, _ = await guest.command()
    assert code == p.Code.PING
    await guest.answer()
    await ping


def _header(code: int, length: int) -> bytes:
    return p.CONTROL_HEADER.pack(code, length)


# -- protocol violations fence the guest -----------------------------------------------


@pytest.mark.parametrize(
    "frame, why",
    [
        (_header(p.Code.ACK, p.MAX_CONTROL_FRAME + 1), "out of range"),
        (_header(p.Code.ACK, 3), "out of range"),
        (p.encode_control(77, b"{}"), "unexpected code 77"),
        (p.encode_control(p.Code.PROCESSASYNCEVENT, b"{not json"), "malformed process event"),
        (p.encode_control(p.Code.PROCESSASYNCEVENT, b"[" * 100_000), "malformed process event"),
        (p.encode_control(p.Code.ACK), "no command pending"),
    ],
    ids=["oversized", "undersized", "unknown-code", "bad-event", "deep-event", "unasked-ack"],
)
def test_a_frame_that_breaks_the_protocol_fences_the_guest(frame, why):
    """The channels close, a pending call and a process waiter fail with the reason."""

    async def scenario(guest, client, fences):
        io = client.open_process("c", "p", client.new_seq())
        call = asyncio.ensure_future(client.call(p.Code.PS, {"container": "c"}))
        await guest.command()  # the PS is out: the answer below is not its own
        if why == "no command pending":
            await guest.answer()  # PS answered: the next ACK is unasked
            await call
        guest.ctl.write(frame)
        await _until(lambda: not client.connected)
        assert len(fences) == 1 and why in fences[0]
        assert client.fenced == fences[0]
        if why != "no command pending":
            with pytest.raises(AgentError, match="fenced"):
                await call
        with pytest.raises(AgentError, match="fenced"):
            await io.exited
        with pytest.raises(AgentError, match="fenced"):
            await client.ping()
        assert await io.stdout_stream.read_all() == b""

    run(scenario)


def test_a_flood_of_unasked_frames_fences_the_guest():
    """Events the guest sends on its own are rate-limited: a flood is a violation."""

    async def scenario(guest, client, fences):
        event = p.json_payload({"container": "c", "process": "x", "status": 0})
        frame = p.encode_control(p.Code.PROCESSASYNCEVENT, event)
        guest.ctl.write(frame * (3 * agent_client.EVENT_BURST))
        await _until(lambda: not client.connected)
        assert "flood" in fences[0]

    run(scenario)


def test_ready_again_and_again_fences_the_guest():
    async def scenario(guest, client, fences):
        guest.ctl.write(p.encode_control(p.Code.READY) * (agent_client.MAX_READY + 1))
        await _until(lambda: not client.connected)
        assert "READY" in fences[0]

    run(scenario)


def test_a_malformed_answer_fences_the_guest():
    """A typed call whose answer is not what the command returns fails and fences."""
    from hyperd.agent.facade import Agent

    async def scenario(guest, client, fences):
        agent = Agent(client)
        ps = asyncio.ensure_future(agent.processes("c"))
        await guest.command()
        await guest.answer(b'{"processes": [{"pid": 1}]}')
        with pytest.raises(AgentError, match="malformed answer to PS"):
            await ps
        assert not client.connected and "malformed answer to PS" in fences[0]

    run(scenario)


# -- what the guest may send, and is dropped or bounded ----------------------------------


def test_events_and_output_for_unknown_processes_are_dropped():
    """Forged events and stream frames for processes nobody registered change nothing."""

    async def scenario(guest, client, fences):
        io = client.open_process("c", "real", client.new_seq())
        for i in range(2000):
            ev = {"container": "c", "process": f"forged-{i}", "status": 1}
            guest.ctl.write(p.encode_control(p.Code.PROCESSASYNCEVENT, p.json_payload(ev)))
            guest.streams.write(p.encode_stream(10**9 + i, b"x" * 100))
        await _still_works(guest, client)
        await asyncio.sleep(0.2)  # the stream channel has no round trip: let it drain
        assert list(client._exits) == [("c", "real")]
        assert list(client._streams) == [io.stdio]
        assert not fences and not io.exited.done()

    run(scenario)


def test_a_flood_of_output_waits_for_its_reader_with_bounded_memory():
    """64 MiB for one process nobody reads yet: the client holds at most MAX_BUFFERED (plus
    a frame) and stops reading; the guest is held back; then everything arrives intact."""

    async def scenario(guest, client, fences):
        io = client.open_process("c", "p", client.new_seq())
        chunk = bytes(range(256)) * 256  # 64 KiB
        total = 1024 * len(chunk)

        async def flood():
            for _ in range(1024):
                guest.streams.write(p.encode_stream(io.stdio, chunk))
                await guest.streams.drain()
            guest.streams.write(p.encode_stream(io.stdio))
            await guest.streams.drain()

        sender = asyncio.ensure_future(flood())
        await _until(lambda: client._buffered >= agent_client.MAX_BUFFERED)
        await asyncio.sleep(0.5)
        assert client._buffered <= agent_client.MAX_BUFFERED + len(chunk)
        assert not sender.done()  # back-pressure reached the guest
        received = 0
        async for data in io.stdout_stream.chunks():
            assert data == chunk
            received += len(data)
        await sender
        assert received == total and client._buffered == 0 and not fences

    run(scenario, timeout=60)


def test_a_guest_that_never_reads_stdin_holds_the_writer_not_memory():
    """stdin waits for the guest (transport buffer bounded), close_stdin gives up after
    its bound, and closing the client does not wait for the guest."""

    async def scenario(guest, client, fences):
        guest.conns[1][1].transport.pause_reading()
        writer = asyncio.ensure_future(client.write_stdin(5, b"y" * (64 << 20)))
        await asyncio.sleep(1)
        assert not writer.done()
        assert client._str_w.transport.get_write_buffer_size() < 2 * p.MAX_STREAM_DATA + 4096
        writer.cancel()
        with pytest.raises(AgentTimeout):
            await client.close_stdin(5, timeout=0.5)
        await asyncio.wait_for(client.close(), 5)
        assert not fences

    run(scenario)


def test_a_hung_guest_is_unresponsive_until_it_answers_again():
    """A call that times out marks the client unresponsive: further calls fail at once
    (no queue grows), a probe still goes out, and any answer ends it."""

    async def scenario(guest, client, fences):
        health: list[str] = []
        client.on_health = health.append
        with pytest.raises(AgentTimeout, match="did not answer PING"):
            await client.call(p.Code.PING, timeout=0.1)  # a caller in a hurry: no verdict
        assert not client.unresponsive
        await guest.command()
        await guest.answer()  # the late answer, dropped
        client.default_timeout = 0.2
        with pytest.raises(AgentTimeout, match="did not answer PS"):
            await client.call(p.Code.PS, {"container": "c"})
        assert client.unresponsive and health == [client.unresponsive]
        for _ in range(1000):
            with pytest.raises(AgentUnresponsive, match="not responding"):
                await client.call(p.Code.PING)
        assert len(client._pending) == 1  # only the timed-out PS waits for its answer
        probe = asyncio.ensure_future(client.call(p.Code.PING, probe=True))
        assert (await guest.command())[0] == p.Code.PS
        assert (await guest.command())[0] == p.Code.PING
        await guest.answer()  # the late answer of the PS, dropped
        await guest.answer()
        await probe
        assert client.unresponsive == "" and health[-1] == "" and not fences
        await _still_works(guest, client)

    run(scenario)


def test_commands_waiting_for_answers_are_bounded():
    async def scenario(guest, client, fences):
        calls = [
            asyncio.ensure_future(client.call(p.Code.PING, probe=True))
            for _ in range(agent_client.MAX_PENDING)
        ]
        await asyncio.sleep(0.1)
        with pytest.raises(AgentUnresponsive, match="commands wait"):
            await client.call(p.Code.PING, probe=True)
        for _ in calls:
            await guest.command()
            await guest.answer()
        await asyncio.gather(*calls)

    run(scenario)


# -- fuzz --------------------------------------------------------------------------------


def _check_bounded(client: AgentClient) -> None:
    assert len(client._exits) <= 1 and len(client._streams) <= 1
    assert len(client._pending) <= agent_client.MAX_PENDING
    assert client._buffered <= agent_client.MAX_BUFFERED + p.MAX_STREAM_DATA


async def _feed(guest, client, fences, control: bytes, stream: bytes) -> None:
    client.open_process("c", "p", 7)
    guest.ctl.write(control)
    guest.streams.write(stream)
    await asyncio.gather(guest.ctl.drain(), guest.streams.drain())
    await asyncio.sleep(0.02)
    _check_bounded(client)
    for task in client._tasks:
        if task.done() and not task.cancelled():
            assert task.exception() is None  # no reader died of what it read
    # either the guest is still heard (and nothing was held against it) or it is fenced
    assert (client.connected and not fences) or (not client.connected and fences)


FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # fmt: skip


@FUZZ
@given(st.binary(max_size=4096), st.binary(max_size=4096))
def test_fuzz_random_bytes(control, stream):
    """Random bytes on both channels: the daemon side never crashes, stays bounded, and
    either goes on or fences the guest."""
    run(lambda g, c, f: _feed(g, c, f, control, stream), timeout=20)


_codes = st.sampled_from([*p.Code, 2, 3, 77, 2**32 - 1])
_payloads = st.one_of(
    st.binary(max_size=256),
    st.builds(
        lambda c, pr, s, e: json.dumps(
            {"container": c, "process": pr, "status": s, "error": e}
        ).encode(),
        st.sampled_from(["c", "x", ""]),
        st.sampled_from(["p", "q", "archive-out-1"]),
        st.one_of(st.integers(), st.text(max_size=5), st.none()),
        st.text(max_size=10),
    ),  # fmt: skip
)
_control_frames = st.lists(
    st.builds(lambda c, data: p.CONTROL_HEADER.pack(c, 8 + len(data)) + data, _codes, _payloads),
    max_size=40,
)
_stream_frames = st.lists(
    st.builds(
        lambda seq, data: p.STREAM_HEADER.pack(seq, 12 + len(data)) + data,
        st.sampled_from([0, 7, 8, 2**64 - 1]),
        st.binary(max_size=512),
    ),
    max_size=40,
)


@FUZZ
@given(_control_frames, _stream_frames)
def test_fuzz_well_framed_hostile_frames(control, stream):
    """Frames with valid lengths but any code, any payload and any seq."""
    run(lambda g, c, f: _feed(g, c, f, b"".join(control), b"".join(stream)), timeout=20)
