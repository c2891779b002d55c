"""Turning KSM on at start (``ksm = true``): the kernel's settings as it leaves them."""

from __future__ import annotations

import os
import subprocess

import pytest

from hyperd.config import Config
from hyperd.errors import InvalidArgument
from hyperd.vm import ksm


def _sysfs(tmp_path, run: str):
    for key, value in (("run", run), ("pages_to_scan", "100"), ("sleep_millisecs", "200")):
        (tmp_path / key).write_text(f"{value}\n")
    return tmp_path


def _settings(sysfs) -> dict:
    return {p.name: p.read_text().strip() for p in sysfs.iterdir()}


def test_enable_turns_merging_on_at_hypers_scan_rate(tmp_path):
    sysfs = _sysfs(tmp_path, "0")
    assert ksm.enable(sysfs).startswith("KSM turned on")
    assert _settings(sysfs) == {"run": "1", "pages_to_scan": "1000", "sleep_millisecs": "20"}


def test_a_host_already_merging_keeps_its_scan_rate(tmp_path):
    sysfs = _sysfs(tmp_path, "1")
    assert ksm.enable(sysfs).startswith("KSM already on")
    assert _settings(sysfs) == {"run": "1", "pages_to_scan": "100", "sleep_millisecs": "200"}


def test_a_kernel_without_ksm_is_said_and_nothing_written(tmp_path):
    assert "no KSM in this kernel" in ksm.enable(tmp_path / "ksm")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a read-only tmpfs: needs root")
def test_a_failed_write_puts_the_hosts_scan_rate_back(tmp_path):
    """``run`` refusing the write (here a file on a read-only mount) leaves the host's scan
    rate as it was and KSM off."""
    (tmp_path / "ksm").mkdir()
    sysfs = _sysfs(tmp_path / "ksm", "0")
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(ro)], check=True)
    try:
        (ro / "run").write_text("0\n")
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        (sysfs / "run").unlink()
        (sysfs / "run").symlink_to(ro / "run")
        with pytest.raises(OSError):
            ksm.enable(sysfs)
        assert _settings(sysfs) == {"run": "0", "pages_to_scan": "100", "sleep_millisecs": "200"}
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_ksm_must_be_true_or_false_in_the_config(tmp_path):
    """A quoted "false" is not false: a switch that weakens isolation takes a boolean."""
    path = tmp_path / "config"
    path.write_text('ksm = "false"\n')
    with pytest.raises(InvalidArgument, match="ksm must be true or false"):
        Config.load(str(path))
    path.write_text("ksm = false\n")
    assert Config.load(str(path)).ksm is False
