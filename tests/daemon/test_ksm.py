"""``ksm = true``: hyperd turns the host's KSM on at start and says so in its log; KSM's
settings are the host's again after the test."""

from __future__ import annotations

import shutil

import pytest

from hyperd.vm import ksm
from tests.daemon_fixture import Daemon
from tests.workdir import qemu_workdir

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(not (ksm.SYSFS / "run").exists(), reason="kernel without KSM"),
]


@pytest.fixture
def host_ksm():
    """The host's KSM switched off for the test, and its settings put back after."""
    keys = ("run", "pages_to_scan", "sleep_millisecs")
    saved = {k: (ksm.SYSFS / k).read_text().strip() for k in keys}
    (ksm.SYSFS / "run").write_text("0")
    yield
    for key in ("pages_to_scan", "sleep_millisecs", "run"):
        (ksm.SYSFS / key).write_text(saved[key])


def test_ksm_true_turns_merging_on_at_start(libvirt_up, guest_assets, host_ksm):
    workdir = qemu_workdir("hyperd-ksm-")
    d = Daemon(workdir, "ksm = true\n")
    try:
        d.start()
        assert (ksm.SYSFS / "run").read_text().strip() == "1"
        assert (ksm.SYSFS / "pages_to_scan").read_text().strip() == "1000"
        assert "KSM turned on" in d.log.read_text()
    finally:
        d.stop()
        shutil.rmtree(workdir, ignore_errors=True)
