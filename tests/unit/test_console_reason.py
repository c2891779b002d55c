"""The reason a failed boot gives comes from the end of the guest's console."""

from hyperd.vm.machine import console_reason, console_tail


def test_the_agents_last_line_is_the_reason(tmp_path):
    log = tmp_path / "console.log"
    log.write_bytes(
        b"[    0.5] virtio_console: probe\r\n"
        b"hyperstart: hyperstart-ctl: still waiting for the port (5 s)\r\n"
        b"hyperstart: hyperstart-ctl: port not found in 300 s\r\n"
        b"[    9.1] reboot: Power down\r\n"
    )
    assert console_reason(str(log)) == "hyperstart: hyperstart-ctl: port not found in 300 s"


def test_a_kernel_panic_is_the_reason(tmp_path):
    log = tmp_path / "console.log"
    log.write_bytes(b"x" * 5000 + b"\n[ 1.0] Kernel panic - not syncing: Attempted to kill init!\n")
    assert console_reason(str(log)) == "Kernel panic - not syncing: Attempted to kill init!"


def test_no_console_or_no_word_gives_no_reason(tmp_path):
    assert console_reason(str(tmp_path / "missing")) == ""
    assert console_tail(str(tmp_path / "missing")) == ""
    quiet = tmp_path / "quiet.log"
    quiet.write_bytes(b"[ 0.1] Linux version 6.1\n")
    assert console_reason(str(quiet)) == ""
    assert console_tail(str(quiet)) == "[ 0.1] Linux version 6.1"
