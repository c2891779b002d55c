"""Stream pumping and terminal handling for the CLI (attach, exec, logs, pull progress).

``hyper exec`` runs through here: this imports ``_signal`` and ``_socket``, not ``signal``
and ``socket`` (they import enum, selectors...), and errors are ignored with try/except,
not contextlib.suppress (contextlib imports collections, functools...).
"""

from __future__ import annotations

import _signal
import atexit
import os
import sys
from _socket import SHUT_RDWR

from hyperctl.wire import STDERR, HijackedConnection

TYPE_CHECKING = False  # for annotations only: typing (~5 ms) and collections.abc (~2 ms)
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterable
    from typing import BinaryIO, TextIO

DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q, Docker's default


def binary(stream) -> BinaryIO:
    """The binary side of a text stream (``sys.stdout.buffer``) or the stream itself."""
    return getattr(stream, "buffer", stream)


def isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, ValueError, OSError):
        return None


def terminal_size(stream=None) -> tuple[int, int] | None:
    """(rows, cols) of the terminal behind ``stream`` (stdout by default), or None."""
    fd = fileno(stream if stream is not None else sys.stdout)
    if fd is None or not os.isatty(fd):
        return None
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


# --- raw mode -----------------------------------------------------------------------------


class RawTerminal:
    """Put a tty into raw mode; restore it on exit, on errors and at interpreter exit."""

    def __init__(self, stream=None):
        self.fd = fileno(stream if stream is not None else sys.stdin)
        self._saved = None

    def __enter__(self):
        if self.fd is not None and os.isatty(self.fd):
            import termios
            import tty

            self._saved = termios.tcgetattr(self.fd)
            atexit.register(self.restore)
            tty.setraw(self.fd)
        return self

    def restore(self) -> None:
        if self._saved is None:
            return
        import termios

        saved, self._saved = self._saved, None
        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
        except (termios.error, OSError):
            pass

    def __exit__(self, *exc):
        self.restore()
        try:
            atexit.unregister(self.restore)
        except Exception:
            pass


# --- signals ------------------------------------------------------------------------------


def in_background(target: Callable[[], None]) -> threading.Thread:
    """Run ``target`` in a daemon thread (threading is imported only here and for signal
    handlers: a plain ``hyper exec C true`` needs neither)."""
    import threading

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


class _Handlers:
    """Install signal handlers for a while (main thread only); restore the old ones."""

    def __init__(self):
        self._old: dict[int, object] = {}

    def install(self, signums: Iterable[int], handler) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for s in signums:
            try:
                self._old[s] = _signal.signal(s, handler)
            except (ValueError, OSError):
                pass

    def restore(self) -> None:
        for s, h in self._old.items():
            try:
                _signal.signal(s, h)
            except (ValueError, OSError, TypeError):
                pass
        self._old.clear()


PROXIED_SIGNALS = [
    s
    for s in (
        getattr(_signal, n, None)
        for n in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
    )
    if s is not None
]


class SignalProxy(_Handlers):
    """Forward signals received by the CLI to the container (``--sig-proxy``)."""

    def __init__(self, kill: Callable[[str], None]):
        super().__init__()
        self._kill = kill
        self._names: dict[int, str] = {}

    def _handle(self, signum, frame):
        name = self._names[signum]

        def forward():
            try:
                self._kill(name)
            except Exception:
                pass

        in_background(forward)

    def __enter__(self):
        import signal  # here only: it imports enum (~2 ms), and exec proxies no signals

        self._names = {s: signal.Signals(s).name for s in PROXIED_SIGNALS}
        self.install(PROXIED_SIGNALS, self._handle)
        return self

    def __exit__(self, *exc):
        self.restore()


class ResizeMonitor(_Handlers):
    """Send the local terminal's size now and on every SIGWINCH."""

    def __init__(self, resize: Callable[[int, int], None], stream=None):
        super().__init__()
        self._resize = resize
        self._stream = stream

    def send(self) -> None:
        size = terminal_size(self._stream)
        if size is None:
            return

        def do():
            try:
                self._resize(*size)
            except Exception:
                pass

        in_background(do)

    def __enter__(self):
        if terminal_size(self._stream) is not None and hasattr(_signal, "SIGWINCH"):
            self.install([_signal.SIGWINCH], lambda *_: self.send())
        return self

    def __exit__(self, *exc):
        self.restore()


# --- pumping ------------------------------------------------------------------------------


class StreamPump:
    """Copy a hijacked connection to local stdout/stderr, and local stdin to it."""

    def __init__(
        self,
        conn: HijackedConnection,
        tty: bool,
        stdin: BinaryIO | TextIO | None = None,
        stdout=None,
        stderr=None,
        detach_keys: bytes | None = None,
    ):
        self.conn = conn
        self.tty = tty
        self.stdin = stdin
        self.stdout = binary(stdout if stdout is not None else sys.stdout)
        self.stderr = binary(stderr if stderr is not None else sys.stderr)
        self.detach_keys = detach_keys
        self.detached = False
        self._in_thread: threading.Thread | None = None

    # stdin -> connection
    def _read_stdin(self) -> Callable[[], bytes]:
        fd = fileno(self.stdin)
        if fd is not None:
            return lambda: os.read(fd, 32 * 1024)
        src = binary(self.stdin)
        read1 = getattr(src, "read1", None)
        return (lambda: read1(32 * 1024)) if read1 else (lambda: src.read(32 * 1024))

    def _pump_in(self) -> None:
        read = self._read_stdin()
        prev = b""
        try:
            while True:
                data = read()
                if not data:
                    break
                if self.detach_keys:
                    seen = prev + data
                    if self.detach_keys in seen:
                        cut = seen.index(self.detach_keys) - len(prev)
                        if cut > 0:
                            self.conn.send(data[:cut])
                        self.detached = True
                        try:
                            self.conn.sock.shutdown(SHUT_RDWR)
                        except OSError:
                            pass
                        return
                    prev = seen[-(len(self.detach_keys) - 1) :]
                self.conn.send(data)
        except OSError:
            pass
        self.conn.close_write()

    def start_input(self) -> None:
        if self.stdin is None:
            return
        self._in_thread = in_background(self._pump_in)

    # connection -> stdout/stderr
    def pump_output(self) -> None:
        for stream, data in self.conn.frames(self.tty):
            out = self.stderr if stream == STDERR else self.stdout
            try:
                out.write(data)
                out.flush()
            except BrokenPipeError:
                return

    def run(self) -> None:
        """Pump until the daemon closes the connection."""
        self.start_input()
        try:
            self.pump_output()
        finally:
            self.conn.close()


def run_pump(pump: StreamPump, resize: Callable[[int, int], None] | None = None) -> None:
    """Pump until the daemon closes; with ``resize`` (a tty), the remote window size
    follows the local terminal's."""
    if resize is None:
        pump.run()
        return
    with ResizeMonitor(resize) as monitor:
        monitor.send()
        pump.run()


def write_frames(frames: Iterable[tuple[int, bytes]], stdout=None, stderr=None) -> None:
    """Write (stream, bytes) pairs to local stdout / stderr, flushing each."""
    out = binary(stdout if stdout is not None else sys.stdout)
    err = binary(stderr if stderr is not None else sys.stderr)
    for stream, data in frames:
        f = err if stream == STDERR else out
        f.write(data)
        f.flush()


# --- pull progress ------------------------------------------------------------------------


def human_bytes(n: float) -> str:
    """Docker's HumanSize-ish (decimal units, 3 significant digits)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}TB"  # pragma: no cover


def progress_bar(current: int, total: int, width: int = 50) -> str:
    """``[=====>      ]  1.2MB/3.4MB`` like Docker's JSONProgress."""
    if total and total > 0:
        pct = min(1.0, current / total)
        filled = int(width * pct)
        bar = "=" * filled + (">" if filled < width else "") + " " * (width - filled - 1)
        return f"[{bar[:width]}] {human_bytes(current):>8}/{human_bytes(total)}"
    return human_bytes(current) if current else ""


class PullProgress:
    """Render pull messages: per-layer lines updated in place on a terminal (like
    ``docker pull``), plain status lines (no byte counters) otherwise."""

    def __init__(self, out: TextIO | None = None, tty: bool | None = None):
        self.out = out if out is not None else sys.stderr
        self.tty = isatty(self.out) if tty is None else tty
        self.ids: list[str] = []
        self.last_status: dict[str, str] = {}

    def _line(self, msg: dict) -> str:
        status = msg.get("status", "")
        ident = msg.get("id")
        text = f"{ident}: {status}" if ident else status
        detail = msg.get("progressDetail") or {}
        if self.tty and detail.get("current") is not None:
            bar = progress_bar(int(detail.get("current") or 0), int(detail.get("total") or 0))
            if bar:
                text += " " + bar
        elif self.tty and msg.get("progress"):
            text += " " + msg["progress"]
        return text

    def show(self, msg: dict) -> None:
        if "status" not in msg:
            if msg.get("stream"):
                self.out.write(msg["stream"])
                self.out.flush()
            return
        ident = msg.get("id")
        detail = msg.get("progressDetail") or {}
        if not self.tty:
            # no byte counters off a terminal; one line per status change
            same = ident and self.last_status.get(ident) == msg.get("status")
            if detail.get("current") is not None and same:
                return
            if ident:
                self.last_status[ident] = msg.get("status", "")
            self.out.write(self._line(msg) + "\n")
            self.out.flush()
            return
        import shutil  # here only: it imports bz2 and lzma, ~5 ms

        width = shutil.get_terminal_size((100, 24)).columns
        line = self._line(msg)[: max(10, width - 1)]
        if ident and ident in self.ids:
            up = len(self.ids) - self.ids.index(ident)
            self.out.write(f"\x1b[{up}A\r\x1b[2K{line}\x1b[{up}B\r")
        else:
            if ident:
                self.ids.append(ident)
            else:
                self.ids.clear()  # a message without id moves past the layer block
            self.out.write(f"\x1b[2K{line}\n")
        self.out.flush()
