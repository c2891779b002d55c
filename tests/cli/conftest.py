"""Fixtures for the CLI's tests: click-free runs of `hyper`, and a bare real daemon."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def bare_hyperd(libvirt_up, guest_assets):
    """A real hyperd with no image loaded: enough for requests that boot no VM."""
    from tests.daemon.conftest import Daemon
    from tests.workdir import qemu_workdir

    workdir = qemu_workdir("hyperd-cli-")
    daemon = Daemon(workdir)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)
