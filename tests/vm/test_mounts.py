"""NEWCONTAINER's mounts list and checked starts, in one real VM with extra disks.

Containers c1.. are created beside the fixture's c0, as in a pod; c0 is used to look
at the guest (no mount namespaces yet, so its /proc/mounts is the guest's).
"""

from __future__ import annotations

import asyncio
import shutil

import pytest

from hyperd.agent import protocol as p
from hyperd.agent.client import AgentError, AgentTimeout
from hyperd.vm import designer

from .guest import SEED_TEXT, new_rw_disk

pytestmark = pytest.mark.vm

VOL_TEXT = b"hello from the volume disk\n"


def extra_disks(work):
    """rw1/rw2: upper layers; vol: a disk with a file (read-only); pop: empty."""
    content = work / "vol-content"
    content.mkdir()
    (content / "hello").write_bytes(VOL_TEXT)
    disks = [
        designer.DiskSpec(str(new_rw_disk(work / "rw1.ext4")), "rw1"),
        designer.DiskSpec(str(new_rw_disk(work / "rw2.ext4")), "rw2"),
        designer.DiskSpec(str(new_rw_disk(work / "vol.ext4", "16M", content)), "vol", True),
        designer.DiskSpec(str(new_rw_disk(work / "pop.ext4", "16M")), "pop"),
    ]
    shutil.rmtree(content)
    return disks


def _image():
    return p.Mount("block", "image", "/", "ext4", readonly=True, layer="lower")


def _mounts_of(guest, loop_thread, cid: str) -> list[str]:
    """The guest's mount points under container cid's run directory."""
    res = loop_thread.run(guest.run(["cat", "/proc/mounts"]))
    return [line for line in res.stdout.decode().splitlines() if f"/run/hs/{cid}/" in line]


def _sh(guest, loop_thread, cid: str, script: str):
    return loop_thread.run(guest.run(["sh", "-c", script], container=cid))


def test_mounts_list_builds_root_and_volumes(disks_guest, loop_thread):
    """Image lower + ext4 upper + tmpfs /data + read-only disk /ro + populated volume,
    and a user tmpfs on /dev/shm that wins over the standard one."""
    g = disks_guest
    mounts = [
        _image(),
        p.Mount("block", "rw1", "/", "ext4", layer="upper"),
        p.Mount("tmpfs", "", "/data", options="size=16m,mode=1777"),
        p.Mount("block", "vol", "/ro", "ext4", readonly=True),
        p.Mount("block", "pop", "/srv/seed", "ext4", populate=True),
        p.Mount("tmpfs", "", "/dev/shm", options="size=1m,noexec"),
    ]
    loop_thread.run(g.agent.create_container("c1", mounts))
    try:
        data = _sh(g, loop_thread, "c1", "stat -f -c %T /data; echo x > /data/f && cat /data/f")
        assert (data.status, data.stdout) == (0, b"tmpfs\nx\n"), data.stderr
        ro = _sh(g, loop_thread, "c1", "cat /ro/hello; touch /ro/new")
        assert ro.stdout == VOL_TEXT
        assert ro.status != 0 and b"Read-only file system" in ro.stderr
        shm = _sh(g, loop_thread, "c1", "stat -f -c '%b %S' /dev/shm")
        blocks, size = map(int, shm.stdout.split())
        assert blocks * size == 1 << 20
        seed = _sh(
            g,
            loop_thread,
            "c1",
            "cd /srv/seed && stat -c '%n %a %u %g %F' a.txt sub && readlink link && cat link",
        )
        assert seed.status == 0, seed.stderr
        assert seed.stdout.decode().splitlines() == [
            "a.txt 640 1000 50 regular file",
            "sub 700 1000 1000 directory",
            "a.txt",
            SEED_TEXT.decode().strip(),
        ]
        upper = _sh(g, loop_thread, "c1", "echo upper > /on-upper; stat -f -c %t /")
        assert upper.stdout == b"794c7630\n"  # overlayfs
    finally:
        loop_thread.run(g.agent.remove_container("c1"))
    assert _mounts_of(g, loop_thread, "c1") == []
    # the writable layer was the rw1 disk: its upper/ holds what c1 wrote
    loop_thread.run(g.agent.create_container("c7", [_image(), p.Mount("block", "rw1", "/mnt")]))
    try:
        assert _sh(g, loop_thread, "c7", "cat /mnt/upper/on-upper").stdout == b"upper\n"
    finally:
        loop_thread.run(g.agent.remove_container("c7"))


def test_populate_copies_only_into_an_empty_volume(disks_guest, loop_thread):
    """pop was filled from the image by the previous test; on /home it is not empty,
    so /home shows pop's files and none of the image's."""
    g = disks_guest
    mounts = [_image(), p.Mount("block", "pop", "/home", "ext4", populate=True)]
    loop_thread.run(g.agent.create_container("c2", mounts))
    try:
        res = _sh(g, loop_thread, "c2", "ls /home")
        assert res.stdout.split() == [b"a.txt", b"link", b"lost+found", b"sub"]
    finally:
        loop_thread.run(g.agent.remove_container("c2"))


def test_mount_error_names_the_mount_and_undoes_the_rest(disks_guest, loop_thread):
    g = disks_guest
    mounts = [
        _image(),
        p.Mount("tmpfs", "", "/data"),
        p.Mount("block", "no-such-disk", "/vol", "ext4"),
    ]
    with pytest.raises(AgentError) as info:
        loop_thread.run(g.agent.create_container("c3", mounts))
    assert "/vol" in info.value.message and '"no-such-disk"' in info.value.message
    assert _mounts_of(g, loop_thread, "c3") == []
    loop_thread.run(g.agent.create_container("c3", mounts[:2]))
    loop_thread.run(g.agent.remove_container("c3"))


@pytest.mark.parametrize(
    "mounts, text",
    [
        ([], "no root"),
        ([p.Mount("nfs", "x", "/", layer="lower")], 'unknown type "nfs"'),
        ([_image(), p.Mount("tmpfs", "", "data")], 'target "data" is not absolute'),
        ([_image(), p.Mount("tmpfs", "", "/x", layer="lower")], "target"),
    ],
    ids=["no-root", "bad-type", "relative-target", "layer-off-root"],
)
def test_bad_mounts_are_refused_before_mounting(disks_guest, loop_thread, mounts, text):
    with pytest.raises(AgentError, match=text):
        loop_thread.run(disks_guest.agent.create_container("c4", mounts))
    assert _mounts_of(disks_guest, loop_thread, "c4") == []


def test_failed_main_process_leaves_no_container(disks_guest, loop_thread):
    """NEWCONTAINER whose program is missing: ERROR with exitCode 127, no exit event,
    nothing mounted; the same id then starts fine."""
    g, a = disks_guest, disks_guest.agent
    mounts = [_image(), p.Mount("block", "rw2", "/", "ext4", layer="upper")]

    async def start(args):
        io = a.open_process("c5", "init", a.new_seq(), a.new_seq())
        proc = p.Process("init", args, stdio=io.stdio, stderr=io.stderr)
        try:
            await a.create_container("c5", mounts, proc)
        except AgentError as exc:
            await a.ping()
            done, _ = await asyncio.wait({io.exited}, timeout=1.0)
            a.forget_process(io)
            return exc, bool(done)
        await a.close_stdin(io.stdio)
        return await io.exited, None

    err, got_event = loop_thread.run(start(["nosuch"]))
    assert (err.process_exit_code, err.message) == (
        127,
        'exec: "nosuch": executable file not found in $PATH',
    )
    assert not got_event
    assert _mounts_of(g, loop_thread, "c5") == []
    assert loop_thread.run(start(["true"])) == (0, None)
    loop_thread.run(a.remove_container("c5"))


def test_read_only_root(disks_guest, loop_thread):
    g = disks_guest
    loop_thread.run(g.agent.create_container("c6", [_image()], read_only=True))
    try:
        res = _sh(g, loop_thread, "c6", "grep -c localhost /etc/hosts; touch /x")
        assert res.stdout == b"2\n"
        assert res.status != 0 and b"Read-only file system" in res.stderr
    finally:
        loop_thread.run(g.agent.remove_container("c6"))


def test_a_slow_answer_times_out_and_later_answers_stay_in_step(disks_guest, loop_thread):
    """The agent waits 2 s for a missing disk: a 0.3 s timeout gives AgentTimeout, its
    late ERROR is dropped, and the next command gets its own answer."""
    a = disks_guest.agent
    mounts = [_image(), p.Mount("block", "late-disk", "/late")]
    with pytest.raises(AgentTimeout, match="NEWCONTAINER"):
        loop_thread.run(a.create_container("c8", mounts, timeout=0.3))
    assert loop_thread.run(a.version()) == p.API_VERSION
    assert _mounts_of(disks_guest, loop_thread, "c8") == []
