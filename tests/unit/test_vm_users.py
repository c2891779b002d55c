"""Each VM's own user: POSIX ACL grants on its disks, uid leases, and the sweep at start.

Access is checked for real: a process running as the granted uid (setpriv) opens the file
or is refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from hyperd.errors import HyperError
from hyperd.vm import acl, designer, users
from tests.workdir import qemu_workdir

UID_A, UID_B = 100_000_901, 100_000_902
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="grants and setpriv need root")


@pytest.fixture
def workdir():
    path = qemu_workdir("hyper-users-")  # 0755: other uids can reach files in it
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _disk(workdir: Path, name: str, mode: int = 0o644) -> Path:
    path = workdir / name
    path.write_bytes(b"secret of " + name.encode())
    path.chmod(mode)
    return path


def _opens(uid: int, path: Path, write: bool = False) -> bool:
    """Can a process of ``uid`` (libvirt's QEMU group, no other) open the file?"""
    gid = users.qemu_gid() or 65534
    redirect = "<>" if write else "<"  # open read-write (no truncation), or read-only
    res = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--",
         "/bin/sh", "-c", f'exec 3{redirect} "$1"', "sh", str(path)],
        capture_output=True,
    )  # fmt: skip
    return res.returncode == 0


def test_grant_lets_exactly_the_granted_uids_in(workdir):
    disk = _disk(workdir, "rw.ext4")
    assert _opens(UID_A, disk)  # 0644: anyone could read it before
    acl.grant(disk, UID_A, write=True)
    acl.grant(disk, UID_B, write=False)
    assert acl.named_users(disk) == {UID_A: 6, UID_B: 4}
    assert _opens(UID_A, disk, write=True)
    assert _opens(UID_B, disk) and not _opens(UID_B, disk, write=True)
    assert not _opens(UID_B + 1, disk)  # "other" lost its bits
    assert not _opens(65534, disk)


def test_revoke_takes_one_uid_out_and_the_last_leaves_plain_mode_bits(workdir):
    disk = _disk(workdir, "image.erofs", 0o444)
    acl.grant(disk, UID_A, write=False)
    acl.grant(disk, UID_B, write=False)
    acl.revoke(disk, UID_A)
    assert not _opens(UID_A, disk) and _opens(UID_B, disk)
    acl.revoke(disk, UID_B)
    assert acl.named_users(disk) == {}
    assert "system.posix_acl_access" not in os.listxattr(disk)
    assert disk.stat().st_mode & 0o777 == 0o440  # root reads it; "other" stays shut
    acl.revoke(workdir / "gone", UID_A)  # a file removed meanwhile: nothing to do


def _users(workdir: Path, count: int = 4) -> users.VMUsers:
    return users.VMUsers(workdir / "leases", UID_A, count, users.qemu_gid() or 65534)


def test_claims_are_distinct_and_skip_uids_that_run_processes(workdir, monkeypatch):
    monkeypatch.setattr(users, "_process_uids", lambda: {UID_A + 1})
    vu = _users(workdir)
    assert [vu.claim(f"vm{i}") for i in range(3)] == [UID_A, UID_A + 2, UID_A + 3]
    with pytest.raises(HyperError, match="no free VM user"):
        vu.claim("vm3")
    vu.release(UID_A + 2)
    assert vu.claim("vm4") == UID_A + 2


def test_lease_is_written_before_the_grant_and_gone_with_the_release(workdir):
    disk = _disk(workdir, "rw.ext4")
    vu = _users(workdir)
    uid = vu.claim("vm0")
    vu.grant(uid, {str(disk): True})
    lease = json.loads((workdir / "leases" / f"{uid}.json").read_text())
    assert lease == {"vm": "vm0", "uid": uid, "files": {str(disk): True}}
    assert (workdir / "leases").stat().st_mode & 0o777 == 0o700
    assert _opens(uid, disk, write=True)
    vu.release(uid)
    assert not _opens(uid, disk)
    assert list((workdir / "leases").iterdir()) == []
    with pytest.raises(HyperError, match="no lease"):
        vu.grant(uid, {str(disk): True})


def test_a_moved_disk_is_revoked_under_its_new_path(workdir):
    """A pool VM's blank disk renamed onto a container's layer: the ACL goes with the
    inode, and the VM's end takes it off there (the old path is gone: nothing to do)."""
    blank, layer = _disk(workdir, "pool-rw.ext4"), _disk(workdir, "rw.ext4")
    vu = _users(workdir)
    uid = vu.claim("hyper-pool-x")
    vu.grant(uid, {str(blank): True})
    vu.moved(uid, str(blank), str(layer))
    os.replace(blank, layer)
    assert _opens(uid, layer, write=True)
    lease = json.loads((workdir / "leases" / f"{uid}.json").read_text())
    assert lease["files"] == {str(blank): True, str(layer): True}
    after = _users(workdir)  # a daemon restart in between: the lease says where it went
    after.adopt("hyper-pool-x", uid, {})
    after.release(uid)
    assert not _opens(uid, layer) and acl.named_users(layer) == {}
    assert list((workdir / "leases").iterdir()) == []
    with pytest.raises(HyperError, match="not granted"):
        vu.moved(vu.claim("vm1"), str(blank), str(layer))


def test_a_restarted_daemon_keeps_running_vms_uids_and_sweeps_the_others(workdir):
    """Leases outlive the daemon: the uid of a VM still running stays its own (and is not
    handed out again); a VM that ended meanwhile has its grants revoked at start."""
    kept, ended = _disk(workdir, "kept.ext4"), _disk(workdir, "ended.ext4")
    before = _users(workdir)
    uid_kept, uid_ended = before.claim("vm-kept"), before.claim("vm-ended")
    before.grant(uid_kept, {str(kept): True})
    before.grant(uid_ended, {str(ended): True})

    after = _users(workdir)  # the daemon restarted
    assert after.uids() == {uid_kept: "vm-kept", uid_ended: "vm-ended"}
    booting = after.claim("vm-booting")  # not running yet, but this daemon's own
    assert after.sweep(running={uid_kept}) == ["vm-ended"]
    assert booting in after.uids()
    assert acl.named_users(ended) == {} and acl.named_users(kept) == {uid_kept: 6}
    assert after.claim("vm-new") not in (uid_kept, booting)
    after.adopt("vm-kept", uid_kept, {str(kept): True})
    assert after.uids()[uid_kept] == "vm-kept"


def _spec(**kw) -> designer.VMSpec:
    base = dict(name="hyper-x", uuid="6f1c3f0e-0d9b-4a57-9d8e-0a1b2c3d4e5f", kernel="/k",
                initrd="/i", control_socket="/c", stream_socket="/s", console_log="/l")  # fmt: skip
    return designer.VMSpec(**base, **kw)


def test_own_user_is_a_static_label_libvirt_relabels_nothing_for():
    dom = designer.design(_spec(user=(UID_A, 64055)), "qemu")
    xml = dom.to_xml()
    assert f"<label>+{UID_A}:+64055</label>" in xml
    assert '<seclabel type="static" model="dac" relabel="no">' in xml
    assert designer.own_user(xml) == (UID_A, 64055)


def test_shares_run_as_root_even_with_an_own_user_and_root_is_no_own_user():
    shares = [designer.ShareSpec("/srv", "bind0")]
    xml = designer.design(_spec(user=(UID_A, 64055), shares=shares), "qemu").to_xml()
    assert "<label>+0:+0</label>" in xml and designer.own_user(xml) is None
    assert designer.own_user(designer.design(_spec(), "qemu").to_xml()) is None
    dynamic = (
        "<domain><seclabel type='dynamic' model='dac' relabel='yes'>"
        "<label>+64055:+64055</label></seclabel></domain>"
    )
    assert designer.own_user(dynamic) is None


def test_grants_and_releases_at_once_on_one_shared_disk_lose_no_entry(workdir, monkeypatch):
    """Many VMs booting and ending at once share an image's root disk: each grant and
    revoke rewrites the file's whole ACL, and none may undo another's (50 'run -d' at once
    saw QEMU refused its image disk)."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(users, "_process_uids", set)
    write = acl._write  # a busy host preempts a thread between reading and writing the ACL
    monkeypatch.setattr(acl, "_write", lambda *a: time.sleep(0.002) or write(*a))
    disk = _disk(workdir, "image.erofs")
    vu = _users(workdir, count=96)
    uids = [vu.claim(f"vm{i}") for i in range(96)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda uid: vu.grant(uid, {str(disk): False}), uids[:64]))
    assert set(acl.named_users(disk)) == set(uids[:64])
    with ThreadPoolExecutor(16) as pool:  # unplugs and boots at once
        jobs = [pool.submit(vu.revoke, uid, str(disk)) for uid in uids[:32]]
        jobs += [pool.submit(vu.grant, uid, {str(disk): False}) for uid in uids[64:]]
        [job.result() for job in jobs]
    assert set(acl.named_users(disk)) == set(uids[32:])
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(vu.release, uids[32::2]))
    assert set(acl.named_users(disk)) == set(uids[33::2])
