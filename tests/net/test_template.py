"""The VM template (``factory = "template"``): a container started in a clone of the
template behaves as one whose VM booted for it (hostname, network, disks, volume, exit
code, the host's clock); clones do not share random state; a daemon restart keeps the
template and leaks no VM or tap. Real daemon in its own network namespace, real VMs."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.conftest import BUILD
from tests.net.conftest import NetDaemon, factory_daemon

pytestmark = pytest.mark.vm
TEMPLATE_WAIT = 180  # seconds to boot and save the template under TCG on a busy machine


@pytest.fixture(scope="module")
def tmpld(libvirt_up, guest_assets):
    with factory_daemon("hyperd-tmpl-", "template") as d:
        yield d


def _wait_ready(d: NetDaemon) -> None:
    deadline = time.time() + TEMPLATE_WAIT
    while d.hyper_info()["VMTemplate"] != "ready":
        assert time.time() < deadline, "the template was not made"
        time.sleep(0.5)


def test_a_container_from_a_clone_behaves_as_a_cold_one(tmpld):
    """The same command in a clone and in a VM booted for it (a non-default memory size
    does not fit the template) prints the same things: its own hostname, an address on
    the bridge with the gateway reachable, the image's files, a volume it wrote to, a
    clock within seconds of the host's (the template's is minutes old); and the
    container's exit code comes back. No VM is kept waiting (no pool)."""
    _wait_ready(tmpld)
    time.sleep(3)  # the template's guest clock falls behind the host's from here
    script = (
        "hostname; cat /etc/hostname; ip -4 -o addr show eth0 | wc -l; "
        "ping -c1 -W5 $(ip route | awk '/default/ {print $3}') >/dev/null && echo gw-ok; "
        "ls /bin/busybox; echo data > /vol/f; cat /vol/f; date +%s; exit 7"
    )
    out = {}
    for how, extra in (("clone", []), ("cold", ["-m", "200m"])):
        name = f"tmpl-{how}"
        before = time.time()
        res = tmpld.hyper(
            "run", "--name", name, "-v", f"vol-{how}:/vol", *extra, "busybox", "sh", "-c", script
        )
        assert res.returncode == 7, (how, res.stderr)
        vm = tmpld.inspect_field(name, "{{.Hyper.VM}}")
        cid = tmpld.inspect_field(name, "{{.Id}}")
        lines = res.stdout.decode().splitlines()
        assert lines[0] == lines[1] == cid[:12], (how, lines)
        assert before - 2 <= int(lines[-1]) <= time.time() + 2, (how, lines[-1], before)
        out[how] = (lines[2:-1], vm)
        tmpld.hyper("rm", name)
    assert out["clone"][0] == out["cold"][0] == ["1", "gw-ok", "/bin/busybox", "data"], out
    assert out["clone"][1].startswith("hyper-pool-"), out
    assert not out["cold"][1].startswith("hyper-pool-"), out
    assert not [v for v in tmpld.vms() if v.startswith("hyper-pool-")], tmpld.vms()


def test_clones_do_not_share_random_state(tmpld):
    """Two clones of one template, which start with the same kernel memory, read
    different random bytes."""
    _wait_ready(tmpld)
    got = []
    for _ in range(2):
        res = tmpld.hyper("run", "--rm", "busybox", "sh", "-c", "head -c 16 /dev/urandom | od -x")
        assert res.returncode == 0, res.stderr
        got.append(res.stdout)
    assert got[0] != got[1], got


def test_a_restart_keeps_the_template_and_leaks_nothing(tmpld):
    """SIGTERM: the next daemon uses the same template files (not made again) and starts
    clones from them; a running container stays; no template VM, pool VM or spare tap is
    left behind."""
    _wait_ready(tmpld)
    state = tmpld.root / "template" / "state"
    made = state.stat().st_mtime_ns
    res = tmpld.hyper("run", "-d", "--name", "tmpl-stays", "busybox", "sleep", "600")
    assert res.returncode == 0, res.stderr
    try:
        tmpld.kill_hyperd(15)
        tmpld.relaunch()
        assert tmpld.hyper_info()["VMTemplate"] == "ready"
        assert state.stat().st_mtime_ns == made
        assert tmpld.inspect_field("tmpl-stays", "{{.State.Running}}") == "true"
        res = tmpld.hyper("run", "--rm", "busybox", "true")
        assert res.returncode == 0, res.stderr
        kept = tmpld.inspect_field("tmpl-stays", "{{.Hyper.VM}}")
        deadline = time.time() + 30  # the --rm container's VM goes after it answered
        while (vms := tmpld.vms()) != [kept] and time.time() < deadline:
            time.sleep(0.3)
        assert vms == [kept], vms
        taps = tmpld.inside("ip", "-o", "link", "show").stdout.decode()
        assert "hytpool" not in taps, taps
    finally:
        tmpld.hyper("rm", "-f", "tmpl-stays")


def test_a_new_initrd_makes_a_new_template(tmpld):
    """A daemon started with another initrd (a new build: another file) does not clone
    the old template: it makes a new one and its clones run containers."""
    _wait_ready(tmpld)
    state = tmpld.root / "template" / "state"
    made = state.stat().st_mtime_ns
    initrd = tmpld.workdir / "initrd-new.img"
    old = BUILD / "initrd.img"
    shutil.copyfile(old, initrd)
    config = tmpld.config.read_text()
    try:
        tmpld.kill_hyperd(15)
        tmpld.config.write_text(config.replace(f'initrd = "{old}"', f'initrd = "{initrd}"'))
        tmpld.relaunch()
        _wait_ready(tmpld)
        assert state.stat().st_mtime_ns != made
        res = tmpld.hyper("run", "--rm", "busybox", "true")
        assert res.returncode == 0, res.stderr
    finally:
        tmpld.kill_hyperd(15)
        tmpld.config.write_text(config)
        tmpld.relaunch()
