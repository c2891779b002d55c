"""Turning KSM on at start (``ksm = true``): the kernel's settings as it leaves them."""

from __future__ import annotations

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
