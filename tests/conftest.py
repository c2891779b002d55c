"""Fixtures shared by every test: the built guest, libvirt, and an asyncio loop thread."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"


class LoopThread:
    """An asyncio loop in a thread, so sync tests can drive async clients."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 120.0):
        """Run a coroutine on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="session")
def loop_thread():
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture(scope="session")
def guest_assets():
    """The kernel and initrd built by `make kernel initrd` (never skipped: CI builds them)."""
    from hyperd.vm.machine import GuestAssets

    return GuestAssets.locate(str(BUILD / "vmlinux"), str(BUILD / "initrd.img"))


@pytest.fixture(scope="session")
def libvirt_up():
    """libvirtd and virtlogd running (started here on machines without systemd)."""
    subprocess.run([str(ROOT / "tools" / "start-libvirt.sh")], check=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the item, so fixtures can see a failure."""
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


def failed(request) -> bool:
    """True when the requesting test failed in setup or call."""
    node = request.node
    return any(getattr(getattr(node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))


from tests.daemon_fixture import daemon, hyperd  # noqa: E402,F401 - shared fixtures
