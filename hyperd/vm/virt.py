"""The one thin wrapper around libvirt-python; nothing else in hyper imports libvirt.

It hides libvirt's types and error style: callers get names, states, XML strings and
HyperErrors (NotFound for a missing domain, VirtError for the rest, each naming the VM).
``Hypervisor`` is the connection; ``Domain`` is one VM on it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import libvirt
import libvirt_qemu

from hyperd.errors import HyperError, NotFound

from . import domain as d
from . import stats as st

log = logging.getLogger(__name__)

_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "running",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}
_STOP_REASONS = {
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED: "destroyed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED: "failed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED: "migrated",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED: "saved",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT: "snapshot",
}

_STATS_GROUPS = (
    libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | libvirt.VIR_DOMAIN_STATS_BLOCK
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
)
_DETACH_POLL_S = 0.1
_MIGRATION_POLL_S = 0.005
# The migration capability that leaves RAM shared with a file out of the stream: a
# template's state is its devices' and CPUs', the RAM is the file clones map.
_IGNORE_SHARED = {"capability": "x-ignore-shared", "state": True}
_STATE_FD = "hyper-state"

_event_loop_registered = False


class VirtError(HyperError):
    """libvirt refused or failed an operation."""


class StateError(VirtError):
    """A VM's saved state could not be written or loaded."""


@contextlib.contextmanager
def _errors(name: str, action: str) -> Iterator[None]:
    """Turn a libvirtError of ``action`` on VM ``name`` into NotFound or VirtError."""
    try:
        yield
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise NotFound(f"no VM named {name}") from exc
        raise VirtError(f"cannot {action} VM {name}: {exc.get_error_message()}") from exc


@contextlib.contextmanager
def _state_errors() -> Iterator[None]:
    """Any failure while saving or loading a state is a StateError (a QEMU that lacks a
    capability, a state it cannot read: the template is not usable as it is)."""
    try:
        yield
    except StateError:
        raise
    except VirtError as exc:
        raise StateError(exc.message) from exc


def _silence(_ctx, _err) -> None:
    """libvirt prints every error to stderr by default; we raise them instead."""


libvirt.registerErrorHandler(_silence, None)


def use_asyncio_events() -> None:
    """Deliver libvirt events on the running asyncio loop (call before connecting)."""
    global _event_loop_registered
    if not _event_loop_registered:
        import libvirtaio

        libvirtaio.virEventRegisterAsyncIOImpl()
        _event_loop_registered = True


class Domain:
    """One libvirt domain: its state, devices, counters. Methods block (use a thread)."""

    def __init__(self, dom):
        self._dom = dom
        self.name: str = dom.name()
        self.uuid: str = dom.UUIDString()

    def __repr__(self) -> str:
        return f"<Domain {self.name}>"

    def state(self) -> str | None:
        """'running', 'paused', 'shutoff', ... or None once the domain is gone."""
        try:
            code, _reason = self._dom.state()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            msg = exc.get_error_message()
            raise VirtError(f"cannot read the state of VM {self.name}: {msg}") from exc
        return _STATES.get(code, "unknown")

    def destroy(self) -> bool:
        """Hard-stop the domain; False when it was not running (any more)."""
        try:
            self._dom.destroy()
            return True
        except libvirt.libvirtError as exc:
            gone = (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID)
            if exc.get_error_code() in gone:
                return False
            raise VirtError(f"cannot stop VM {self.name}: {exc.get_error_message()}") from exc

    def suspend(self) -> None:
        """Pause every vCPU; the guest keeps its memory and devices."""
        with _errors(self.name, "pause"):
            self._dom.suspend()

    def resume(self) -> None:
        """Let a paused guest run again."""
        with _errors(self.name, "resume"):
            self._dom.resume()

    def save_state(self, fd: int, timeout: float) -> None:
        """Write the paused guest's CPU and device state to ``fd``, leaving out RAM shared
        with a file. QEMU's migration, through the monitor: libvirt's own save writes all
        of RAM and restores a domain only under its old name and UUID, never as a clone."""
        self._migrate("migrate", fd, "save the state of", timeout)

    def load_state(self, fd: int, timeout: float) -> None:
        """Load a state ``save_state`` wrote into this domain (started with ``-incoming
        defer`` and RAM mapping the same file), then run it."""
        self._migrate("migrate-incoming", fd, "load the state of", timeout)
        self.resume()

    def _migrate(self, command: str, fd: int, action: str, timeout: float) -> None:
        """QEMU's ``command`` (out or in) over ``fd``, RAM shared with a file left out."""
        with _state_errors():
            self._qmp("migrate-set-capabilities", capabilities=[_IGNORE_SHARED])
            self._qmp("getfd", fd=fd, fdname=_STATE_FD)
            self._qmp(command, uri=f"fd:{_STATE_FD}")
            self._wait_migration(action, timeout)

    def _wait_migration(self, action: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            info = self._qmp("query-migrate")
            status = info.get("status")
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                why = info.get("error-desc", status)
                raise StateError(f"cannot {action} VM {self.name}: {why}")
            if time.monotonic() > deadline:
                raise StateError(f"cannot {action} VM {self.name}: no end after {timeout:g} s")
            time.sleep(_MIGRATION_POLL_S)

    def _qmp(self, command: str, fd: int | None = None, **arguments) -> dict:
        """A QMP command libvirt has no API for (libvirt marks the domain "tainted:
        custom-monitor"); ``fd`` goes along with it."""
        cmd = json.dumps({"execute": command, "arguments": arguments})
        with _errors(self.name, f"run {command} on"):
            if fd is None:
                out = libvirt_qemu.qemuMonitorCommand(self._dom, cmd, 0)
            else:
                out = libvirt_qemu.qemuMonitorCommandWithFiles(self._dom, cmd, [fd], 0)[0]
        reply = json.loads(out)
        if "error" in reply:
            why = reply["error"].get("desc", reply["error"])
            raise VirtError(f"cannot run {command} on VM {self.name}: {why}")
        return reply.get("return") or {}

    def xml(self) -> str:
        """The live domain XML (devices with the names libvirt gave them)."""
        with _errors(self.name, "describe"):
            return self._dom.XMLDesc(0)

    def metadata(self, namespace: str, key: str) -> str | None:
        """A value from the domain's ``<metadata>`` element in ``namespace``, if there is one."""
        try:
            root = ET.fromstring(self.xml())
        except ET.ParseError as exc:
            raise VirtError(f"VM {self.name}: unreadable domain XML: {exc}") from exc
        el = root.find(f"metadata/{{{namespace}}}vm/{{{namespace}}}{key}")
        return el.text if el is not None else None

    def attach_device(self, xml: str, live: bool = True) -> None:
        """Hot-plug one device (its XML) into the running guest, or into the config."""
        with _errors(self.name, f"attach {d.device_identity(xml)} to"):
            self._dom.attachDeviceFlags(xml, _affect(live))

    def detach_device(self, xml: str, live: bool = True, wait: float = 20.0) -> None:
        """Unplug one device and wait (at most ``wait`` s) until the guest has released it.

        libvirt asks the guest to eject the device and returns before it has; a guest
        that never does leaves the device in place, which is a VirtError.
        """
        what = d.device_identity(xml)
        deadline = time.monotonic() + wait
        if live and not d.has_device(self.xml(), xml):
            raise NotFound(f"VM {self.name} has no {what}")
        with _errors(self.name, f"detach {what} from"):
            self._dom.detachDeviceFlags(xml, _affect(live))
        if not live:
            return
        while d.has_device(self.xml(), xml):
            if time.monotonic() >= deadline:
                raise VirtError(f"VM {self.name}: the guest did not release {what} in {wait:g} s")
            time.sleep(_DETACH_POLL_S)

    def stats(self) -> st.VMStats:
        """CPU time, QEMU's memory, per-disk and per-NIC counters."""
        with _errors(self.name, "read the counters of"):
            records = self._dom.connect().domainListGetStats([self._dom], _STATS_GROUPS)
        if not records:
            raise NotFound(f"no VM named {self.name}")
        devices = d.Devices.parse(self.xml())
        return st.from_record(records[0][1], devices, st.emulator_pid(self.uuid))


def _affect(live: bool) -> int:
    return libvirt.VIR_DOMAIN_AFFECT_LIVE if live else libvirt.VIR_DOMAIN_AFFECT_CONFIG


class Hypervisor:
    """A connection to libvirtd; safe to share across threads."""

    def __init__(self, uri: str = "qemu:///system"):
        self.uri = uri
        self._conn = None
        self._lock = threading.Lock()

    def _connection(self):
        with self._lock:
            if self._conn is None or not self._conn.isAlive():
                try:
                    self._conn = libvirt.open(self.uri)
                except libvirt.libvirtError as exc:
                    raise VirtError(f"cannot connect to libvirt at {self.uri}: {exc}") from exc
            return self._conn

    def close(self) -> None:
        """Drop the connection."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    self._conn.close()
                self._conn = None

    def create(self, xml: str) -> Domain:
        """Start a transient domain from XML. It vanishes when it stops."""
        try:
            return Domain(self._connection().createXML(xml, 0))
        except libvirt.libvirtError as exc:
            raise VirtError(f"cannot start VM: {exc.get_error_message()}") from exc

    def lookup(self, name: str) -> Domain:
        """The domain called ``name``; NotFound when there is none."""
        with _errors(name, "look up"):
            return Domain(self._connection().lookupByName(name))

    def destroy(self, name: str) -> bool:
        """Hard-stop a domain; False when it did not exist (any more)."""
        try:
            return self.lookup(name).destroy()
        except NotFound:
            return False

    def state(self, name: str) -> str | None:
        """'running', 'shutoff', ... or None when there is no such domain."""
        try:
            return self.lookup(name).state()
        except NotFound:
            return None

    def names(self, prefix: str = "") -> list[str]:
        """Names of the domains libvirt knows (running or defined) starting with prefix."""
        doms = self._connection().listAllDomains(0)
        return sorted(n for n in (dom.name() for dom in doms) if n.startswith(prefix))

    def metadata(self, name: str, namespace: str, key: str) -> str | None:
        """A value from a domain's <metadata> element in ``namespace``, if there is one."""
        try:
            return self.lookup(name).metadata(namespace, key)
        except NotFound:
            return None

    def on_stopped(self, callback: Callable[[str, str], None]) -> int:
        """Call ``callback(name, reason)`` whenever a domain stops; needs asyncio events."""

        def lifecycle(_conn, dom, event, detail, _opaque):
            if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
                callback(dom.name(), _STOP_REASONS.get(detail, "stopped"))

        return self._connection().domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None
        )
