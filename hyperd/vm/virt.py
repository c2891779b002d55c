"""The one thin wrapper around libvirt-python; nothing else in hyper imports libvirt.

It hides libvirt's types and error style: callers get names, states and HyperErrors.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable

import libvirt

from hyperd.errors import HyperError, NotFound

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

_event_loop_registered = False


class VirtError(HyperError):
    """libvirt refused or failed an operation."""


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

    def create(self, xml: str) -> str:
        """Start a transient domain from XML; return its UUID. It vanishes when it stops."""
        try:
            return self._connection().createXML(xml, 0).UUIDString()
        except libvirt.libvirtError as exc:
            raise VirtError(f"cannot start VM: {exc.get_error_message()}") from exc

    def _lookup(self, name: str):
        try:
            return self._connection().lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise NotFound(f"no VM named {name}") from exc
            raise VirtError(f"libvirt: {exc.get_error_message()}") from exc

    def destroy(self, name: str) -> bool:
        """Hard-stop a domain; False when it did not exist (any more)."""
        try:
            self._lookup(name).destroy()
            return True
        except NotFound:
            return False
        except libvirt.libvirtError as exc:
            gone = (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID)
            if exc.get_error_code() in gone:
                return False
            raise VirtError(f"cannot stop VM {name}: {exc.get_error_message()}") from exc

    def state(self, name: str) -> str | None:
        """'running', 'shutoff', ... or None when there is no such domain."""
        try:
            st, _reason = self._lookup(name).state()
        except NotFound:
            return None
        except libvirt.libvirtError:
            return None
        return _STATES.get(st, "unknown")

    def names(self, prefix: str = "") -> list[str]:
        """Names of the domains libvirt knows (running or defined) starting with prefix."""
        doms = self._connection().listAllDomains(0)
        return sorted(n for n in (dom.name() for dom in doms) if n.startswith(prefix))

    def metadata(self, name: str, namespace: str, key: str) -> str | None:
        """A value from a domain's <metadata> element in ``namespace``, if there is one."""
        try:
            root = ET.fromstring(self._lookup(name).XMLDesc(0))
        except (NotFound, libvirt.libvirtError, ET.ParseError):
            return None
        el = root.find(f"metadata/{{{namespace}}}vm/{{{namespace}}}{key}")
        return el.text if el is not None else None

    def on_stopped(self, callback: Callable[[str, str], None]) -> int:
        """Call ``callback(name, reason)`` whenever a domain stops; needs asyncio events."""

        def lifecycle(_conn, dom, event, detail, _opaque):
            if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
                callback(dom.name(), _STOP_REASONS.get(detail, "stopped"))

        return self._connection().domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None
        )
