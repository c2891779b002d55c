"""A hostile or hung guest cannot hurt the daemon or its neighbours: a real hyperd with VMs.

The module has a daemon of its own whose agents get 12 s to answer (``agent_timeout``), so
that a hung guest is found quickly, and one neighbour container that every test checks:
after each attack the daemon and the neighbour must answer within BOUND seconds, however
loaded the host is. Hung guests are made from outside (``virsh suspend``, which hyperd
does not hear of): from inside, a container can no longer halt its guest.
"""

from __future__ import annotations

import concurrent.futures
import io
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import docker
import pytest

from tests.daemon_fixture import running_daemon

pytestmark = pytest.mark.vm
AGENT_TIMEOUT = 12
BOUND = 30.0
PROBE = Path(__file__).resolve().parents[1] / "vm" / "probe.c"


@pytest.fixture(scope="module")
def iso(libvirt_up, guest_assets):
    with running_daemon("hyperd-iso-", f"agent_timeout = {AGENT_TIMEOUT}\n") as d:
        yield d


@pytest.fixture(scope="module")
def neighbour(iso):
    c = _run_all(iso, ["neighbour"])[0]
    yield c
    c.remove(force=True)


def _run_all(d, names: list[str], **kw) -> list:
    """Start containers (``sleep 1000``) at once; each is checked to run."""
    client = d.client()

    def run(name):
        return client.containers.run("busybox", ["sleep", "1000"], name=name, detach=True, **kw)

    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        made = list(pool.map(run, names))
    for c in made:
        c.reload()
        assert c.status == "running", c.attrs["State"]
    return made


def _answers(d, neighbour) -> None:
    """The daemon lists its containers and the neighbour runs an exec, within BOUND."""
    start = time.monotonic()
    assert "neighbour" in {c.name for c in d.client().containers.list()}
    res = neighbour.exec_run(["echo", "ok"])
    assert (res.exit_code, res.output) == (0, b"ok\n")
    assert time.monotonic() - start < BOUND


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _probe_tar(tmp_path: Path) -> bytes:
    """probe.c (tests/vm), static, as a tar holding /probe."""
    binary = tmp_path / "probe"
    subprocess.run(["cc", "-static", "-O2", "-o", str(binary), str(PROBE)], check=True)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.add(binary, "probe")
    return out.getvalue()


ATTACKS = {
    "halt the guest": "halt -f || reboot -f || poweroff -f",
    "stop and kill PID 1": (
        "kill -STOP 1 && kill -KILL 1 && sleep 0.5 && grep -q '^State:.T' /proc/1/status"
    ),
    "ptrace the agent": (
        "for pid in $(ls /proc | grep -E '^[0-9]+$'); do"
        " case $(readlink /proc/$pid/exe) in /init|*hyperstart*) /probe ptrace $pid && exit 0;;"
        " esac; done; exit 1"
    ),
    "read a raw disk": "mknod /dev/vda b $(tr : ' ' < /sys/block/vda/dev) && head -c 512 /dev/vda",
    "forge frames": (
        "for port in /sys/class/virtio-ports/*; do"
        " mknod /dev/${port##*/} c $(tr : ' ' < $port/dev) &&"
        " printf '\\0\\0\\0\\011\\0\\0\\0\\010' > /dev/${port##*/} || exit 1; done"
    ),
}


def test_attacks_from_a_container_fail_and_hurt_nobody(iso, neighbour, tmp_path):
    """Each attack fails inside the attacker's VM; after each, the daemon and the neighbour
    answer, the attacker still runs, and at the end it is removed within the bound."""
    attacker = _run_all(iso, [_name("attacker")])[0]
    assert attacker.put_archive("/", _probe_tar(tmp_path))
    for what, script in ATTACKS.items():
        res = attacker.exec_run(["sh", "-c", script])
        assert res.exit_code != 0, (what, res.output)
        _answers(iso, neighbour)
        attacker.reload()
        assert attacker.status == "running", what
    start = time.monotonic()
    attacker.remove(force=True)
    assert time.monotonic() - start < BOUND
    _answers(iso, neighbour)


def _virsh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["virsh", "-q", *args], capture_output=True, text=True)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_a_hung_guest_is_reported_and_stop_kill_rm_f_end_it(iso, neighbour):
    """Three guests hang (their VMs paused behind hyperd's back): the watchdog reports
    each (event, inspect) with no request made; exec and attach fail at once with the
    reason; stop, kill and rm -f succeed by destroying the VM; the neighbour carries on."""
    client = iso.client()
    names = {k: _name(f"hung-{k}") for k in ("stop", "kill", "rm")}
    hung = dict(zip(names, _run_all(iso, list(names.values())), strict=True))
    vms = {k: c.attrs["Hyper"]["VM"] for k, c in hung.items()}
    since = time.time()
    for vm in vms.values():
        assert _virsh("suspend", vm).returncode == 0

    def reported(c) -> bool:
        c.reload()
        return c.attrs["State"]["Error"].startswith("VM not responding")

    _wait_for(lambda: all(reported(c) for c in hung.values()), 2 * AGENT_TIMEOUT + 10, "reports")
    events = client.events(
        since=since, until=time.time(), decode=True, filters={"event": "vm_unresponsive"}
    )
    assert {e["Actor"]["Attributes"]["name"] for e in events} == set(names.values())
    c = hung["stop"]
    assert c.attrs["Hyper"]["Reason"] == c.attrs["State"]["Error"]
    assert c.status == "running"

    start = time.monotonic()
    with pytest.raises(docker.errors.APIError, match="not responding") as info:
        c.exec_run(["true"])
    assert info.value.status_code == 409
    with pytest.raises(docker.errors.APIError, match="not responding"):
        c.attach(stream=False, logs=False)
    assert time.monotonic() - start < 5
    _answers(iso, neighbour)

    start = time.monotonic()
    c.stop(timeout=1)
    c.reload()
    assert (c.status, c.attrs["State"]["ExitCode"]) == ("exited", 137)
    assert "not responding" in c.attrs["Hyper"]["Reason"]

    c = hung["kill"]
    with pytest.raises(docker.errors.APIError, match="not responding"):
        c.kill("SIGTERM")
    c.kill()  # SIGKILL: the VM is destroyed
    _wait_for(lambda: c.reload() or c.status == "exited", BOUND, "the kill")
    assert c.attrs["State"]["ExitCode"] == 137

    hung["rm"].remove(force=True)
    assert time.monotonic() - start < BOUND
    for vm in vms.values():
        assert _virsh("domstate", vm).returncode != 0  # no such domain any more
    _answers(iso, neighbour)
    for k in ("stop", "kill"):
        hung[k].remove()


def test_twenty_at_once_then_rm_f_leave_nothing_behind(iso, neighbour):
    """20 `run -d` at once, then `rm -f` of all at once: no domain, QEMU, run dir, socket,
    disk or container directory is left (this daemon has no bridge: no tap, address or
    iptables rule to leak)."""
    names = [_name(f"many{i}") for i in range(20)]
    made = _run_all(iso, names, mem_limit="64m")
    ids = [c.id for c in made]
    vms = [c.attrs["Hyper"]["VM"] for c in made]
    with concurrent.futures.ThreadPoolExecutor(len(made)) as pool:
        list(pool.map(lambda c: c.remove(force=True), made))
    assert not {c.name for c in iso.client().containers.list(all=True)} & set(names)

    def nothing_left() -> bool:
        domains = set(_virsh("list", "--all", "--name").stdout.split())
        qemus = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True)
        run_dirs = {p.name for p in (iso.run_dir / "vms").glob("*")}
        container_dirs = {p.name for p in (iso.root / "containers").glob("*")}
        return (
            not domains & set(vms)
            and not any(vm in qemus.stdout for vm in vms)
            and not run_dirs & set(vms)
            and not container_dirs & set(ids)
        )

    _wait_for(nothing_left, BOUND, "the removals")
    sockets = list((iso.run_dir / "vms").glob("**/*.sock"))
    assert [s for s in sockets if any(vm in str(s) for vm in vms)] == []
    _answers(iso, neighbour)
