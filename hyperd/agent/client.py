"""Asyncio client of the in-guest agent (hyperstart).

One AgentClient per VM: it owns the two channel sockets, answers commands in order,
multiplexes process output by stream seq and delivers exit events.

The guest is not trusted. What it sends is bounded (frame sizes, output held for readers,
the rate of frames it sends on its own) and checked; a guest that breaks the protocol is
*fenced*: its channels are closed, every waiter fails, and the owner destroys its VM. A
guest that does not answer in time is *unresponsive*: calls fail at once (no queue of
commands grows behind it) until it answers a probe again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable

from hyperd.errors import HyperError

from . import protocol as p
from .io import OutputStream, ProcessIO, Transfer

__all__ = [
    "AgentClient",
    "AgentError",
    "AgentTimeout",
    "AgentUnresponsive",
    "OutputStream",
    "ProcessIO",
    "Transfer",
]

log = logging.getLogger(__name__)

# Output bytes buffered for all the streams of a VM before the reader stops taking frames
# from the guest (back-pressure reaches the guest through virtio-serial).
MAX_BUFFERED = 16 << 20
# How long a command may wait for its answer unless the caller says otherwise.
DEFAULT_TIMEOUT = 30.0
# Commands waiting for an answer, those given up on included (a late answer is theirs).
MAX_PENDING = 256
# Frames the guest sends on its own (events, READY): a burst, then so many per second.
EVENT_BURST, EVENT_RATE = 4096, 1024.0
# READY is sent once per connection; a few more are tolerated.
MAX_READY = 8
# Frames a reader handles before it lets the rest of the daemon run.
YIELD_EVERY = 64


class AgentError(HyperError):
    """The agent answered ERROR, broke the protocol, or went away.

    ``process_exit_code`` is Docker's code for a process that could not start (126, 127)
    and ``errno`` the guest's errno when it reported one; both None otherwise. (``exit_code``
    stays the CLI's, as for every HyperError.)
    """

    status = 500

    def __init__(
        self, message: str, process_exit_code: int | None = None, errno: int | None = None
    ):
        super().__init__(message)
        self.process_exit_code = process_exit_code
        self.errno = errno


class AgentTimeout(AgentError):
    """A command got no answer in time (a hung or overloaded guest)."""


class AgentUnresponsive(AgentTimeout):
    """The guest did not answer an earlier command in time and has not answered since."""


class _Budget:
    """A token bucket: ``burst`` frames at once, ``rate`` more per second."""

    def __init__(self, burst: float, rate: float):
        self.burst, self.rate = burst, rate
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class AgentClient:
    """Talks to hyperstart over the control and stream sockets of one VM.

    ``default_timeout`` bounds every call that gives none; ``on_health(reason)`` hears
    when the guest becomes unresponsive (the reason) and answers again (""), and
    ``on_fence(reason)`` when it is fenced.
    """

    def __init__(self, control_path: str, stream_path: str):
        self.control_path = control_path
        self.stream_path = stream_path
        self.default_timeout = DEFAULT_TIMEOUT
        self.on_health: Callable[[str], None] | None = None
        self.on_fence: Callable[[str], None] | None = None
        self.unresponsive = ""  # why, while the guest does not answer
        self.fenced = ""  # why the guest was cut off
        self._ctl_w: asyncio.StreamWriter | None = None
        self._str_w: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task] = []
        self._pending: list[asyncio.Future] = []
        self._lock = asyncio.Lock()
        self._ready = asyncio.Event()
        self._readies = 0
        self._budget = _Budget(EVENT_BURST, EVENT_RATE)
        self._streams: dict[int, OutputStream] = {}
        self._buffered = 0
        self._room = asyncio.Event()
        self._room.set()
        self._exits: dict[tuple[str, str], asyncio.Future] = {}  # of each one's p.Event
        self._transfers: dict[tuple[str, str], Transfer] = {}
        self._closed: asyncio.Future | None = None
        self._seq = itertools.count(time.time_ns() // 1000)

    # -- connection --------------------------------------------------------------------

    async def connect(self, timeout: float = 30.0, wait_ready: bool = True) -> int:
        """Open both channels, wait for READY (at boot) and check the agent's version.

        ``wait_ready=False`` is for re-adopting a running VM, whose agent said READY
        long ago (it says it again on reconnect, which is harmless).
        """
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        deadline = loop.time() + timeout
        ctl_r, self._ctl_w = await _open_unix(self.control_path, deadline)
        str_r, self._str_w = await _open_unix(self.stream_path, deadline)
        self._tasks = [
            asyncio.create_task(self._read_control(ctl_r)),
            asyncio.create_task(self._read_streams(str_r)),
        ]
        if wait_ready:
            await self._until(self._ready.wait(), deadline, "agent READY")
        answer = await self._until(self.call(p.Code.GETVERSION), deadline, "GETVERSION")
        try:
            version = json.loads(answer or b"{}").get("version")
        except (ValueError, AttributeError):
            version = None
        if version != p.API_VERSION:
            await self.close()
            raise AgentError(f"agent speaks protocol {version!r:.40}, hyperd {p.API_VERSION}")
        return version

    async def _until(self, aw, deadline: float, what: str):
        remaining = deadline - asyncio.get_running_loop().time()
        waiter = asyncio.ensure_future(aw)
        done, _ = await asyncio.wait(
            {waiter, self._closed}, timeout=max(remaining, 0), return_when=asyncio.FIRST_COMPLETED
        )
        if waiter in done:
            return waiter.result()
        waiter.cancel()
        if self._closed in done:
            raise AgentError(f"agent channel closed while waiting for {what}")
        raise AgentError(f"timed out waiting for {what}")

    async def close(self) -> None:
        """Close both channels; pending calls and waiters fail with AgentError.

        Data the guest has not taken is dropped: a guest that reads nothing cannot hold
        the close up.
        """
        for task in self._tasks:
            task.cancel()
        for w in (self._ctl_w, self._str_w):
            if w is not None:
                w.close()
                try:
                    await asyncio.wait_for(w.wait_closed(), 1)
                except (Exception, asyncio.CancelledError):  # timed out or broken: drop it
                    w.transport.abort()
                    if asyncio.current_task().cancelling():
                        raise
        self._fail_all("agent connection closed")

    def fence(self, reason: str) -> None:
        """Cut the guest off: it broke the protocol. Its channels close, every waiter
        fails, and ``on_fence`` tells the owner (who destroys the VM)."""
        if self.fenced:
            return
        self.fenced = reason
        log.warning("agent at %s fenced: %s", self.control_path, reason)
        self._fail_all(f"agent fenced: {reason}")
        for w in (self._ctl_w, self._str_w):
            if w is not None:
                w.transport.abort()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        if self.on_fence is not None:
            self.on_fence(reason)

    @property
    def connected(self) -> bool:
        """True until a channel closes."""
        return self._closed is not None and not self._closed.done()

    # -- commands ----------------------------------------------------------------------

    async def call(
        self,
        code: int,
        payload: dict | bytes | None = None,
        timeout: float | None = None,
        probe: bool = False,
    ) -> bytes:
        """Send one command and return the ACK payload.

        ERROR raises AgentError (with the guest's message, exit code and errno); no
        answer within ``timeout`` seconds (default: ``default_timeout``) raises
        AgentTimeout; when that was the full default bound, from then on every call
        raises AgentUnresponsive at once until the guest answers again (a ``probe``, the
        watchdog's PING, is sent regardless).
        """
        if not self.connected:
            raise AgentError(
                f"agent fenced: {self.fenced}" if self.fenced else "agent is not connected"
            )
        if self.unresponsive and not probe:
            raise AgentUnresponsive(f"the VM's agent is not responding ({self.unresponsive})")
        if len(self._pending) >= MAX_PENDING:
            raise AgentUnresponsive(f"{len(self._pending)} commands wait for the agent's answers")
        if isinstance(payload, dict):
            payload = p.json_payload(payload)
        frame = p.encode_control(code, payload or b"")
        ok, data = await self._exchange(frame, code, timeout or self.default_timeout)
        if not ok:
            info = p.decode_error(data)
            raise AgentError(info.message, process_exit_code=info.exit_code, errno=info.errno)
        return data

    async def send_raw(self, frame: bytes, timeout: float | None = None) -> tuple[bool, bytes]:
        """Send a pre-built (possibly malformed) frame; return (acked, payload)."""
        return await self._exchange(frame, None, timeout or self.default_timeout)

    async def _exchange(self, frame: bytes, code, timeout: float) -> tuple[bool, bytes]:
        # A future we give up on stays queued (cancelled): the late answer is matched to
        # it and dropped, so later answers stay in step with their commands.
        fut = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                async with self._lock:
                    self._pending.append(fut)
                    self._ctl_w.write(frame)
                    await self._ctl_w.drain()
                return await fut
        except TimeoutError:
            name = getattr(code, "name", "command")
            if timeout >= self.default_timeout:  # not just a caller in a hurry
                self._set_health(f"no answer to {name} within {timeout:g} s")
            raise AgentTimeout(f"agent did not answer {name} within {timeout:g} s") from None

    def _set_health(self, reason: str) -> None:
        if bool(reason) == bool(self.unresponsive) or not self.connected:
            return
        self.unresponsive = reason
        if reason:
            log.warning("agent at %s is not responding: %s", self.control_path, reason)
        if self.on_health is not None:
            self.on_health(reason)

    async def ping(self) -> None:
        """PING the agent."""
        await self.call(p.Code.PING)

    def new_seq(self) -> int:
        """A stream seq that no process of this VM uses."""
        return next(self._seq)

    # -- processes ---------------------------------------------------------------------

    def _stream(self, seq: int) -> OutputStream:
        stream = self._streams.get(seq)
        if stream is None:
            stream = self._streams[seq] = OutputStream(taken=self._taken)
        return stream

    def open_process(self, container: str, process: str, stdio: int, stderr: int = 0) -> ProcessIO:
        """Register a process's streams and exit before the command that starts it."""
        out = self._stream(stdio)
        err = self._stream(stderr) if stderr else None
        fut = self._exits.get((container, process))
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._exits[(container, process)] = fut
        return ProcessIO(container, process, stdio, stderr, out, err, fut)

    def forget_process(self, io: ProcessIO) -> None:
        """Drop the bookkeeping of a process whose start failed or which was reaped.

        Streams the guest has not ended end now (readers see EOF); later frames for
        them are dropped.
        """
        for seq in (io.stdio, io.stderr):
            if seq:
                self._end_stream(self._streams.pop(seq, None))
        self._exits.pop((io.container, io.process), None)

    def open_transfer(self, container: str, job: str, seq: int, outgoing: bool) -> Transfer:
        """Register an archive transfer before ARCHIVEOUT (``outgoing``) or ARCHIVEIN."""
        stream = self._stream(seq) if outgoing else None
        fut = asyncio.get_running_loop().create_future()
        xfer = Transfer(container, job, seq, stream, fut)
        self._transfers[(container, job)] = xfer
        return xfer

    def forget_transfer(self, xfer: Transfer) -> None:
        """Drop a transfer's bookkeeping; frames still coming for it are dropped."""
        if xfer.stream is not None:
            self._end_stream(self._streams.pop(xfer.seq, None))
        self._transfers.pop((xfer.container, xfer.job), None)
        if not xfer.finished.done():
            xfer.finished.cancel()

    @staticmethod
    def _end_stream(stream: OutputStream | None) -> None:
        """EOF now for a stream the guest has not ended (what it sent is dropped); an
        ended stream keeps its queued data for a slow reader."""
        if stream is not None:
            stream.end()

    async def write_stdin(self, seq: int, data: bytes) -> None:
        """Send stdin data in frames (empty data sends nothing; see close_stdin); waits
        while the guest is not taking it."""
        for off in range(0, len(data), p.MAX_STREAM_DATA):
            self._str_w.write(p.encode_stream(seq, data[off : off + p.MAX_STREAM_DATA]))
            await self._str_w.drain()

    async def close_stdin(self, seq: int, timeout: float | None = None) -> None:
        """Send EOF on a process's stdin; AgentTimeout if the guest takes nothing for
        ``timeout`` seconds."""
        self._str_w.write(p.encode_stream(seq))
        timeout = timeout or self.default_timeout
        try:
            await asyncio.wait_for(self._str_w.drain(), timeout)
        except TimeoutError:
            raise AgentTimeout(f"the agent took no stream data for {timeout:g} s") from None

    # -- readers -----------------------------------------------------------------------

    async def _read_control(self, reader: asyncio.StreamReader) -> None:
        try:
            for n in itertools.count(1):
                code, size = p.decode_control_header(
                    await reader.readexactly(p.CONTROL_HEADER.size)
                )
                self._on_control(code, await reader.readexactly(size))
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        except (asyncio.IncompleteReadError, ConnectionError):
            self._fail_all("agent control channel closed")
        except p.ProtocolError as exc:
            self.fence(str(exc))
        except Exception as exc:  # noqa: BLE001 - whatever the guest sent, the daemon goes on
            log.exception("control frame from %s", self.control_path)
            self.fence(f"unreadable control frame: {exc!r:.200}")

    def _on_control(self, code: int, payload: bytes) -> None:
        if code in (p.Code.ACK, p.Code.ERROR):
            if not self._pending:
                raise p.ProtocolError(f"answer {code} with no command pending")
            fut = self._pending.pop(0)
            if not fut.done():
                fut.set_result((code == p.Code.ACK, payload))
            self._set_health("")
            return
        if not self._budget.take():
            raise p.ProtocolError("flood of frames sent unasked")
        if code == p.Code.READY:
            self._readies += 1
            if self._readies > MAX_READY:
                raise p.ProtocolError("READY sent again and again")
            self._ready.set()
        elif code == p.Code.PROCESSASYNCEVENT:
            self._on_event(p.decode_event(payload))
        else:
            raise p.ProtocolError(f"unexpected code {code} from the guest")

    def _on_event(self, ev: p.Event) -> None:
        # Events of processes nobody waits for (forgotten, or never started by this
        # daemon) are dropped: the guest cannot grow this client's tables.
        key = (ev.container, ev.process)
        xfer = self._transfers.get(key)
        if xfer is not None:
            if not xfer.finished.done():
                xfer.finished.set_result(ev)
            return
        fut = self._exits.get(key)
        if fut is not None and not fut.done():
            fut.set_result(ev)

    async def _read_streams(self, reader: asyncio.StreamReader) -> None:
        try:
            for n in itertools.count(1):
                seq, size = p.decode_stream_header(await reader.readexactly(p.STREAM_HEADER.size))
                data = await reader.readexactly(size)
                await self._on_stream(seq, data)
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        except (asyncio.IncompleteReadError, ConnectionError):
            self._fail_all("agent stream channel closed")
        except p.ProtocolError as exc:
            self.fence(f"stream channel: {exc}")
        except Exception as exc:  # noqa: BLE001 - whatever the guest sent, the daemon goes on
            log.exception("stream frame from %s", self.stream_path)
            self.fence(f"unreadable stream frame: {exc!r:.200}")

    async def _on_stream(self, seq: int, data: bytes) -> None:
        stream = self._streams.get(seq)
        if stream is None or stream.done:
            return  # a stream nobody reads (any more): dropped
        if not data:
            stream.done = True
            await stream.queue.put(None)
            return
        self._buffered += len(data)
        await stream.queue.put(data)
        while self._buffered > MAX_BUFFERED:
            self._room.clear()
            await self._room.wait()

    def _taken(self, n: int) -> None:
        self._buffered -= n
        if self._buffered <= MAX_BUFFERED:
            self._room.set()

    def _fail_all(self, reason: str) -> None:
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(reason)
        for fut in self._pending:
            if not fut.done():
                fut.set_exception(AgentError(reason))
        self._pending.clear()
        for stream in self._streams.values():
            if not stream.done:
                stream.done = True
                try:
                    stream.queue.put_nowait(None)
                except asyncio.QueueFull:  # EOF after what the reader has yet to take
                    self._tasks.append(asyncio.ensure_future(stream.queue.put(None)))
        futures = [*self._exits.values(), *(x.finished for x in self._transfers.values())]
        for fut in futures:
            if not fut.done():
                fut.set_exception(AgentError(reason))
                fut.exception()  # a waiter may never come; do not warn about it


async def _open_unix(path: str, deadline: float):
    """Connect to a unix socket that QEMU may not be listening on yet."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return await asyncio.open_unix_connection(path, limit=1 << 20)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            if loop.time() >= deadline:
                raise AgentError(f"cannot connect to agent channel {path}: {exc}") from exc
            await asyncio.sleep(0.02)
