"""The VM pool (``factory = "cache:1"``): a container started in a pool VM behaves as one
whose VM booted for it (hostname, network, published port, disks, volume, exit code); the
pool refills; a container that does not fit boots its own VM; a daemon restart rebuilds
the pool and leaks no VM or tap. Real daemon in its own network namespace, real VMs."""

from __future__ import annotations

import io
import os
import sys
import tarfile
import time
from pathlib import Path

import pytest

from hyperd.containers.create import writable_disk_blank
from hyperd.vm import accel, acl
from tests.net.conftest import NetDaemon, factory_daemon

pytestmark = pytest.mark.vm
POOL_WAIT = 120  # seconds for a pool VM to boot under TCG on a busy machine


@pytest.fixture(scope="module")
def poold(libvirt_up, guest_assets):
    with factory_daemon("hyperd-pool-", "cache:1") as d:
        yield d


def _wait_ready(d: NetDaemon) -> None:
    deadline = time.time() + POOL_WAIT
    while d.hyper_info()["VMPool"]["Ready"] < 1:
        assert time.time() < deadline, "no pool VM became ready"
        time.sleep(0.5)


def test_a_container_from_the_pool_behaves_as_a_cold_one(poold):
    """The same command in a pool VM and in a VM booted for it (a non-default memory size
    does not fit the pool) prints the same things: its own hostname, an address on the
    bridge with the gateway reachable, the image's files, a volume it wrote to; and the
    container's exit code comes back. The pool VM is the container's (inspect's Hyper.VM)
    and the pool refills."""
    _wait_ready(poold)
    script = (
        "hostname; cat /etc/hostname; ip -4 -o addr show eth0 | wc -l; "
        "ping -c1 -W5 $(ip route | awk '/default/ {print $3}') >/dev/null && echo gw-ok; "
        "ls /bin/busybox; echo data > /vol/f; cat /vol/f; exit 7"
    )
    out = {}
    for how, extra in (("pool", []), ("cold", ["-m", "200m"])):
        name = f"pool-{how}"
        res = poold.hyper(
            "run", "--name", name, "-v", f"vol-{how}:/vol", *extra, "busybox", "sh", "-c", script
        )
        assert res.returncode == 7, (how, res.stderr)
        vm = poold.inspect_field(name, "{{.Hyper.VM}}")
        cid = poold.inspect_field(name, "{{.Id}}")
        lines = res.stdout.decode().splitlines()
        assert lines[0] == lines[1] == cid[:12], (how, lines)
        out[how] = (lines[2:], vm)
        poold.hyper("rm", name)
    assert out["pool"][0] == out["cold"][0] == ["1", "gw-ok", "/bin/busybox", "data"], out
    assert out["pool"][1].startswith("hyper-pool-"), out
    assert not out["cold"][1].startswith("hyper-pool-"), out
    _wait_ready(poold)


def test_a_published_port_answers_from_a_pool_vm(poold):
    """-p works in a pool VM (its NIC became the container's endpoint on the bridge)."""
    _wait_ready(poold)
    res = poold.hyper(
        "run", "-d", "--name", "pool-web", "-p", "18080:80", "busybox",
        "sh", "-c", "echo hello-pool > /i.html; httpd -f -p 80 -h /",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    try:
        assert poold.inspect_field("pool-web", "{{.Hyper.VM}}").startswith("hyper-pool-")
        code = "import urllib.request as u; print(u.urlopen(%r, timeout=5).read().decode())"
        deadline = time.time() + 60
        while True:
            got = poold.inside(sys.executable, "-c", code % "http://127.0.0.1:18080/i.html")
            if got.stdout == b"hello-pool\n\n" or time.time() > deadline:
                break
            time.sleep(0.5)
        assert got.stdout == b"hello-pool\n\n", got
    finally:
        poold.hyper("rm", "-f", "pool-web")


def test_a_restart_rebuilds_the_pool_and_leaks_nothing(poold):
    """SIGTERM: the pool VMs go with the daemon (a running container stays); the next
    daemon boots a new pool; no VM or spare tap of the old pool is left."""
    _wait_ready(poold)
    res = poold.hyper("run", "-d", "--name", "pool-stays", "busybox", "sleep", "600")
    assert res.returncode == 0, res.stderr
    try:
        kept = poold.inspect_field("pool-stays", "{{.Hyper.VM}}")
        _wait_ready(poold)
        old_pool = [v for v in poold.vms() if v.startswith("hyper-pool-") and v != kept]
        assert len(old_pool) == 1, poold.vms()
        poold.kill_hyperd(15)
        assert old_pool[0] not in poold.vms()
        poold.relaunch()
        assert poold.inspect_field("pool-stays", "{{.State.Running}}") == "true"
        _wait_ready(poold)
        vms = poold.vms()
        assert kept in vms and old_pool[0] not in vms, vms
        assert len([v for v in vms if v.startswith("hyper-pool-")]) == 2, vms  # kept + new
        taps = poold.inside("ip", "-o", "link", "show").stdout.decode()
        assert taps.count("hytpool") == 1, taps
        exec_res = poold.hyper("exec", "pool-stays", "hostname")
        assert exec_res.returncode == 0, exec_res.stderr
    finally:
        poold.hyper("rm", "-f", "pool-stays")


def _ready_vm(d: NetDaemon) -> str:
    """The pool VM waiting now (a taken one's directory under <root>/pool went)."""
    _wait_ready(d)
    ready = [v for v in d.vms() if v.startswith("hyper-pool-") and (d.root / "pool" / v).is_dir()]
    assert len(ready) == 1, (d.vms(), list((d.root / "pool").iterdir()))
    return ready[0]


def _busybox_next(d: NetDaemon) -> str:
    """A busybox container takes the ready pool VM: the refill, booted with busybox's root
    disk, is the pool VM waiting now."""
    _wait_ready(d)
    res = d.hyper("run", "--rm", "busybox", "true")
    assert res.returncode == 0, res.stderr
    return _ready_vm(d)


def _virsh(d: NetDaemon, *args: str) -> str:
    res = d.inside("nsenter", "-t", str(d.ns_pid), "-m", "virsh", *args)
    assert res.returncode == 0, res.stderr
    return res.stdout.decode()


def _disk_sources(d: NetDaemon, vm: str) -> list[str]:
    """The files of a running VM's disks, in target order (its live XML)."""
    lines = _virsh(d, "domblklist", vm).splitlines()[2:]
    return [line.split()[1] for line in lines if len(line.split()) == 2]


def _rootfs(d: NetDaemon, image: str) -> str:
    """The path of an image's root disk."""
    hexid = d.hyper("image", "inspect", "--format", "{{.Id}}", image).stdout.decode().strip()
    found = list((d.root / "rootfs").glob(f"{hexid.removeprefix('sha256:')}.*"))
    assert len(found) == 1, (image, hexid, found)
    return str(found[0])


def _qemu_files(d: NetDaemon, vm: str) -> set[str]:
    """The files the VM's QEMU has open."""
    res = d.inside("nsenter", "-t", str(d.ns_pid), "-m", "cat", f"/run/libvirt/qemu/{vm}.pid")
    fds = Path(f"/proc/{res.stdout.decode().strip()}/fd")
    return {os.readlink(fd) for fd in fds.iterdir()}


def _member(chunks, name: str) -> bytes:
    """A file's content from a tar stream."""
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        return tar.extractfile(name).read()


def _wait_revoked(path: Path) -> None:
    """The VM using the file has ended (torn down in the background): no uid may open it."""
    deadline = time.time() + 60
    while acl.named_users(path):
        assert time.time() < deadline, acl.named_users(path)
        time.sleep(0.3)


def _layer(d: NetDaemon, name: str) -> Path:
    return d.root / "containers" / d.inspect_field(name, "{{.Id}}") / "rw.ext4"


def test_a_pool_vm_brings_the_image_and_a_blank_layer(poold):
    """A container of the image the last pool taker used takes a pool VM that booted with
    that image's root disk and a blank layer: nothing is hot-plugged, and QEMU's layer is
    the container's own rw.ext4 (the pool's blank file renamed onto it). What it writes is
    in that file once it stopped: diff, export, cp and commit (each in a VM of its own)
    see it, and a second start (a pool VM again, the used layer hot-plugged) finds it.
    The exit code comes back each time; the VM's user loses the layer when the VM ends."""
    vm = _busybox_next(poold)
    image = _rootfs(poold, "busybox")
    assert _disk_sources(poold, vm) == [image, str(poold.root / "pool" / vm / "rw.ext4")]
    script = (
        "cat /f 2>/dev/null; echo one >> /f; mkdir -p /d; echo two > /d/g; "
        "while [ ! -e /go ]; do sleep 0.2; done; exit 3"
    )
    res = poold.hyper("run", "-d", "--name", "pool-blank", "busybox", "sh", "-c", script)
    assert res.returncode == 0, res.stderr
    try:
        assert poold.inspect_field("pool-blank", "{{.Hyper.VM}}") == vm
        layer = _layer(poold, "pool-blank")
        assert _disk_sources(poold, vm) == [image, str(poold.root / "pool" / vm / "rw.ext4")]
        assert str(layer) in _qemu_files(poold, vm)
        assert not (poold.root / "pool" / vm).exists()
        assert poold.hyper("exec", "pool-blank", "touch", "/go").returncode == 0
        assert poold.hyper("wait", "pool-blank").stdout.decode().strip() == "3"
        _wait_revoked(layer)
        ctr = poold.client().containers.get("pool-blank")
        changes = {(c["Path"], c["Kind"]) for c in ctr.diff()}
        assert {("/f", 1), ("/d", 1), ("/d/g", 1), ("/go", 1)} <= changes, changes
        assert _member(ctr.export(), "f") == b"one\n"
        assert _member(ctr.get_archive("/d/g")[0], "g") == b"two\n"
        ctr.commit(repository="pool-commit", tag="1")
        _wait_ready(poold)
        again = poold.hyper("start", "-a", "pool-blank")
        assert again.returncode == 3, again.stderr
        assert again.stdout == b"one\n", again.stdout
        second = poold.inspect_field("pool-blank", "{{.Hyper.VM}}")
        assert second.startswith("hyper-pool-") and second != vm
        res = poold.hyper("run", "--rm", "pool-commit:1", "cat", "/f", "/d/g")
        assert res.returncode == 0 and res.stdout == b"one\ntwo\n", res
    finally:
        poold.hyper("rm", "-f", "pool-blank")
        poold.hyper("rmi", "pool-commit:1")


def test_a_pool_vm_warms_up_and_keeps_nothing_of_it(poold):
    """Under TCG a pool VM starts and removes a throwaway container before it is ready:
    its console shows the agent making and removing ``hyper-warm-up``, and the daemon
    logged no warm-up failing (or its process exiting non-zero). The container that takes
    the VM finds nothing of it: the blank layer the warm-up mounted read-only is still as
    made (never mounted, so it is handed over), the taker's changes are what it wrote and
    no more, and its NIC has its own address and routes alone, and its /etc/hosts its own
    address (the warm-up's TEST-NET-1 address is gone from all three)."""
    if accel.choose("auto") != "tcg":
        pytest.skip("pool VMs are warmed up under TCG only")
    vm = _busybox_next(poold)
    console = (poold.root / "pool" / vm / "console.log").read_text(errors="replace")
    assert "container hyper-warm-up: ready" in console, console[-2000:]
    assert "container hyper-warm-up: removed" in console, console[-2000:]
    assert "warm-up" not in poold.log.read_text()  # no warm-up failed, or exited non-zero
    assert writable_disk_blank(poold.root / "pool" / vm / "rw.ext4")
    script = "cat /etc/hosts; ip -4 -o addr show; ip route; echo x > /f"
    res = poold.hyper("run", "--name", "pool-warmed", "busybox", "sh", "-c", script)
    try:
        assert res.returncode == 0, res.stderr
        assert poold.inspect_field("pool-warmed", "{{.Hyper.VM}}") == vm
        out = res.stdout.decode()
        assert "192.0.2." not in out, out
        assert "eth0" in out and "default via" in out, out
        changes = poold.client().containers.get("pool-warmed").diff()
        assert {(c["Path"], c["Kind"]) for c in changes} == {("/f", 1)}, changes
    finally:
        poold.hyper("rm", "-f", "pool-warmed")


def _import_image(d: NetDaemon, name: str) -> None:
    """An image of its own (busybox and a marker file), imported: no VM needed."""
    tar_path = d.workdir / f"{name.replace(':', '-')}.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add("/bin/busybox", "bin/busybox")
        for applet in ("sh", "cat", "true"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        data = f"marker of {name}\n".encode()
        info = tarfile.TarInfo("marker")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    res = d.hyper("import", "-c", 'CMD ["sh"]', str(tar_path), name)
    assert res.returncode == 0, res.stderr


def test_another_image_then_rmi_of_the_image_a_pool_vm_holds(poold):
    """A container of another image than the pool VM holds gets its root disk hot-plugged
    on another serial and mounts that one (it sees its own marker file). The pool then
    boots with that image; removing the image succeeds, the pool VM holding its disk is
    discarded (no VM keeps a removed disk) and the next one boots without it."""
    _import_image(poold, "pool-other:1")
    try:
        vm = _busybox_next(poold)
        assert _rootfs(poold, "busybox") in _disk_sources(poold, vm)
        res = poold.hyper("run", "--rm", "pool-other:1", "cat", "/marker")
        assert res.returncode == 0, res.stderr
        assert res.stdout == b"marker of pool-other:1\n"
        holder = _ready_vm(poold)
        other = _rootfs(poold, "pool-other:1")
        assert other in _disk_sources(poold, holder)
    finally:
        res = poold.hyper("rmi", "pool-other:1")
    assert res.returncode == 0, res.stderr
    assert not Path(other).exists()
    deadline = time.time() + POOL_WAIT
    while holder in poold.vms():
        assert time.time() < deadline, "the pool VM holding a removed image stays"
        time.sleep(0.5)
    vm = _ready_vm(poold)
    assert all(Path(p).exists() for p in _disk_sources(poold, vm)), _disk_sources(poold, vm)
    assert poold.hyper("run", "--rm", "busybox", "true").returncode == 0


def test_a_killed_daemon_keeps_a_pool_started_container_and_sweeps_the_pool(poold):
    """SIGKILL with a container running in a pool VM that gave it its layer: the next
    daemon re-adopts it (exec works; a restart in the same VM mounts the same layer), the
    last pool's VM and directory are gone, and when the container stops its VM's user
    loses the layer (the lease followed the renamed file)."""
    vm = _ready_vm(poold)
    script = "echo run >> /f; sleep 600"
    res = poold.hyper("run", "-d", "--name", "pool-kept", "busybox", "sh", "-c", script)
    assert res.returncode == 0, res.stderr
    try:
        assert poold.inspect_field("pool-kept", "{{.Hyper.VM}}") == vm
        old = _ready_vm(poold)
        poold.kill_hyperd(9)
        poold.relaunch()
        assert poold.inspect_field("pool-kept", "{{.State.Running}}") == "true"
        new = _ready_vm(poold)
        assert old not in poold.vms() and new != old
        assert sorted(p.name for p in (poold.root / "pool").iterdir()) == [new]
        res = poold.hyper("restart", "-t", "1", "pool-kept")
        assert res.returncode == 0, res.stderr
        assert poold.inspect_field("pool-kept", "{{.Hyper.VM}}") == vm
        # the new run writes /f a moment after its start is answered
        wait = "for i in $(seq 300); do [ $(wc -l < /f) -ge 2 ] && break; sleep 0.1; done"
        res = poold.hyper("exec", "pool-kept", "sh", "-c", wait + "; cat /f")
        assert res.returncode == 0 and res.stdout == b"run\nrun\n", res
        layer = _layer(poold, "pool-kept")
        assert acl.named_users(layer)
        assert poold.hyper("stop", "-t", "1", "pool-kept").returncode == 0
        _wait_revoked(layer)
    finally:
        poold.hyper("rm", "-f", "pool-kept")
