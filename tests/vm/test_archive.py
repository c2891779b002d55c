"""STATPATH, ARCHIVEOUT and ARCHIVEIN against one real VM, checked with Python's tarfile.

The archive tests share one VM: each works under its own directory of c0, or in its
own container.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import stat
import tarfile

import pytest

from hyperd.agent import protocol as p
from hyperd.agent.client import AgentError
from hyperd.vm import designer

from .guest import SEED_TEXT, new_rw_disk

pytestmark = pytest.mark.vm

BIG = 200 << 20
CHUNK = 1 << 20


def extra_disks(work):
    """big: room for the 200 MiB transfer (sparse on the host)."""
    return [designer.DiskSpec(str(new_rw_disk(work / "big.ext4", "512M")), "big")]


def _image():
    return p.Mount("block", "image", "/", "ext4", readonly=True, layer="lower")


def _sh(guest, loop_thread, script: str, cid: str = "c0") -> str:
    res = loop_thread.run(guest.run(["sh", "-c", script], container=cid))
    assert res.status == 0, res.stderr
    return res.stdout.decode()


def _out(guest, loop_thread, path: str, cid: str = "c0", changes: bool = False):
    """(PathStat, tarfile of the whole archive)."""

    async def go():
        st, chunks = await guest.agent.archive_out(cid, path, changes=changes)
        return st, b"".join([c async for c in chunks])

    st, data = loop_thread.run(go())
    return st, tarfile.open(fileobj=io.BytesIO(data))


async def _chunks(data: bytes, size: int = 65536):
    for off in range(0, len(data), size):
        yield data[off : off + size]


def _in(guest, loop_thread, path: str, data: bytes, cid: str = "c0", **kw):
    loop_thread.run(guest.agent.archive_in(cid, path, _chunks(data), **kw))


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, type=tarfile.REGTYPE, data: bytes = b"", **kw) -> tuple:
    info = tarfile.TarInfo(name)
    info.type = type
    info.size = len(data) if type == tarfile.REGTYPE else 0
    info.mode = kw.pop("mode", 0o644)
    info.mtime = kw.pop("mtime", 1_600_000_000)
    for key, value in kw.items():
        setattr(info, key, value)
    return info, data if type == tarfile.REGTYPE else None


def _guest_stats(guest, loop_thread, root: str) -> dict[str, tuple]:
    """path -> (octal mode, uid, gid, mtime, type, size) as the guest sees it."""
    out = _sh(guest, loop_thread, f"find {root} -exec stat -c '%n|%a|%u|%g|%Y|%F|%s' {{}} +")
    stats = {}
    for line in out.splitlines():
        name, mode, uid, gid, mtime, kind, size = line.split("|")
        stats[name] = (int(mode, 8), int(uid), int(gid), int(mtime), kind, int(size))
    return stats


KINDS = {
    tarfile.REGTYPE: "regular file",
    tarfile.DIRTYPE: "directory",
    tarfile.SYMTYPE: "symbolic link",
    tarfile.FIFOTYPE: "fifo",
    tarfile.CHRTYPE: "character special file",
    tarfile.LNKTYPE: "regular file",
}


# -- STATPATH -------------------------------------------------------------------------


def test_stat_path(disks_guest, loop_thread):
    a = disks_guest.agent
    passwd = loop_thread.run(a.stat_path("c0", "/etc/passwd"))
    assert (passwd.name, stat.S_ISREG(passwd.mode), passwd.link_target) == ("passwd", True, "")
    assert passwd.size == len(loop_thread.run(a.read_file("c0", "/etc/passwd")))
    sh = loop_thread.run(a.stat_path("c0", "/bin/sh"))
    assert stat.S_ISLNK(sh.mode) and sh.link_target == "/bin/busybox"
    root = loop_thread.run(a.stat_path("c0", "/"))
    assert root.name == "/" and root.is_dir
    with pytest.raises(AgentError, match="no such file or directory") as info:
        loop_thread.run(a.stat_path("c0", "/no/such"))
    assert info.value.errno == 2


# -- ARCHIVEOUT -----------------------------------------------------------------------


def test_archive_out_of_a_directory_matches_the_guest(disks_guest, loop_thread):
    g = disks_guest
    digest = _sh(
        g,
        loop_thread,
        "set -e; mkdir -p /srv/t/sub; cd /srv/t; head -c 3145728 /dev/urandom > big;"
        " echo hello > file; ln file hard; ln -s file sym; ln -s /etc/passwd abs; mkfifo fifo;"
        " mknod null c 1 3; chmod 0751 sub; chown 1000:50 sub; chmod 4755 file;"
        " chown 65534:65534 big; sha256sum big",
    ).split()[0]
    st, tar = _out(g, loop_thread, "/srv/t")
    assert st.name == "t" and st.is_dir
    members = {m.name: m for m in tar.getmembers()}
    expect = _guest_stats(g, loop_thread, "/srv/t")
    assert set(members) == {"t" + name.removeprefix("/srv/t") for name in expect}
    links = [m for m in members.values() if m.islnk()]
    assert len(links) == 1 and {links[0].name, links[0].linkname} == {"t/file", "t/hard"}
    for path, (mode, uid, gid, mtime, kind, size) in expect.items():
        m = members["t" + path.removeprefix("/srv/t")]
        assert (m.mode, m.uid, m.gid, m.mtime, KINDS[m.type]) == (mode, uid, gid, mtime, kind)
        if m.isreg():
            assert m.size == size
    assert (members["t/sym"].linkname, members["t/abs"].linkname) == ("file", "/etc/passwd")
    assert (members["t/null"].devmajor, members["t/null"].devminor) == (1, 3)
    big = tar.extractfile(members["t/big"]).read()
    assert len(big) == 3 << 20 and hashlib.sha256(big).hexdigest() == digest


def test_archive_out_of_a_missing_path_is_an_error(disks_guest, loop_thread):
    with pytest.raises(AgentError, match="no such file or directory") as info:
        _out(disks_guest, loop_thread, "/no/such")
    assert info.value.errno == 2


def test_archive_out_of_a_file_keeps_xattrs(disks_guest, loop_thread):
    st, tar = _out(disks_guest, loop_thread, "/srv/seed/a.txt")
    (m,) = tar.getmembers()
    assert (st.name, m.name, m.mode, m.uid, m.gid) == ("a.txt", "a.txt", 0o640, 1000, 50)
    assert m.pax_headers["SCHILY.xattr.user.origin"] == "image"
    assert tar.extractfile(m).read() == SEED_TEXT


def test_archive_out_of_the_root_leaves_kernel_filesystems_out(disks_guest, loop_thread):
    _, tar = _out(disks_guest, loop_thread, "/")
    names = set(tar.getnames())
    assert {".", "./bin/busybox", "./etc/passwd", "./proc", "./sys", "./dev/null"} <= names
    assert not any(n.startswith(("./proc/", "./sys/", "./dev/pts/")) for n in names)


def test_archive_out_changes_is_an_oci_layer(disks_guest, loop_thread):
    """A container with a tmpfs upper: new, changed and deleted files (of the image
    too) and a directory deleted then made again (opaque)."""
    g = disks_guest
    loop_thread.run(g.agent.create_container("ch", [_image()]))
    try:
        _sh(
            g,
            loop_thread,
            "set -e; echo new > /new.txt; echo changed >> /etc/passwd; rm /bin/notexec;"
            " rm -rf /home/user; mkdir /home/user; echo fresh > /home/user/f",
            cid="ch",
        )
        st, tar = _out(g, loop_thread, "", cid="ch", changes=True)
    finally:
        loop_thread.run(g.agent.remove_container("ch"))
    assert st.is_dir
    members = {m.name: m for m in tar.getmembers()}
    assert not any(n.startswith(("/", "./")) for n in members)
    assert tar.extractfile(members["new.txt"]).read() == b"new\n"
    assert tar.extractfile(members["etc/passwd"]).read().endswith(b"changed\n")
    wh = members["bin/.wh.notexec"]
    assert wh.isreg() and wh.size == 0
    assert members["home/user"].isdir()
    assert members["home/user/.wh..wh..opq"].isreg()
    assert tar.extractfile(members["home/user/f"]).read() == b"fresh\n"
    assert "bin/notexec" not in members and "home/user/.bashrc" not in members
    assert not any("trusted.overlay" in k for m in members.values() for k in m.pax_headers)


# -- ARCHIVEIN ------------------------------------------------------------------------


def test_archive_in_round_trip(disks_guest, loop_thread):
    g = disks_guest
    long = "in/" + "l" * 120 + "/" + "n" * 110
    xattr = _info("in/x.txt", data=b"x", pax_headers={"SCHILY.xattr.user.k": "v"})
    source = _tar(
        _info("in", tarfile.DIRTYPE, mode=0o750, uid=1000, gid=50, mtime=1_500_000_000),
        _info("in/a.txt", data=b"hello", mode=0o640, uid=1000, gid=50),
        _info("in/run.sh", data=b"#!/bin/sh\n", mode=0o4755),
        _info("in/link", tarfile.SYMTYPE, linkname="a.txt"),
        _info("in/hard", tarfile.LNKTYPE, linkname="in/a.txt"),
        _info("in/fifo", tarfile.FIFOTYPE, mode=0o600),
        _info("in/deep/er/file", data=b"deep"),
        _info(long, data=b"long"),
        xattr,
    )
    _sh(g, loop_thread, "mkdir -p /srv/rt")
    _in(g, loop_thread, "/srv/rt", source)
    assert _sh(g, loop_thread, "cd /srv/rt/in; stat -c %h a.txt; stat -c %a deep") == "2\n755\n"
    _, back = _out(g, loop_thread, "/srv/rt/in")
    got = {m.name: m for m in back.getmembers()}
    # one inode, two names: which one carries the data depends on the guest's readdir order
    first, second = sorted((got["in/a.txt"], got["in/hard"]), key=lambda m: m.islnk())
    assert second.islnk() and second.linkname == first.name
    assert (first.mode, first.uid, first.gid, back.extractfile(first).read()) == (
        0o640,
        1000,
        50,
        b"hello",
    )
    src = tarfile.open(fileobj=io.BytesIO(source))  # noqa: SIM115 (in memory)
    for m in src.getmembers():
        b = got[m.name]
        if m.name in ("in/a.txt", "in/hard"):
            continue
        # a symlink's permission bits mean nothing (overlayfs even applies the umask)
        assert (b.type, b.mode if not b.issym() else m.mode, b.uid, b.gid, b.mtime, b.linkname) == (
            m.type,
            m.mode,
            m.uid,
            m.gid,
            m.mtime,
            m.linkname,
        ), m.name
        if m.isreg():
            assert back.extractfile(b).read() == src.extractfile(m).read()
    assert got["in/x.txt"].pax_headers["SCHILY.xattr.user.k"] == "v"


def test_archive_in_takes_absolute_names_relative_to_the_path(disks_guest, loop_thread):
    g = disks_guest
    _sh(g, loop_thread, "mkdir -p /srv/abs")
    _in(g, loop_thread, "/srv/abs", _tar(_info("/abs.txt", data=b"abs")))
    assert _sh(g, loop_thread, "cat /srv/abs/abs.txt; test ! -e /abs.txt && echo ok") == "absok\n"


@pytest.mark.parametrize(
    "members, setup, text, escaped",
    [
        ([_info("../escape", data=b"x")], "", '".."', "/srv/escape"),
        ([_info("ok/../../escape", data=b"x")], "", '".."', "/srv/escape"),
        (
            [_info("esc", tarfile.SYMTYPE, linkname="/etc"), _info("esc/pwned", data=b"x")],
            "",
            "outside",
            "/etc/pwned",
        ),
        (
            [_info("up", tarfile.SYMTYPE, linkname="../.."), _info("up/pwned2", data=b"x")],
            "",
            "outside",
            "/pwned2",
        ),
        ([_info("out/pwned3", data=b"x")], "ln -s /etc /srv/x/out", "outside", "/etc/pwned3"),
    ],
    ids=["dotdot", "dotdot-inside", "absolute-symlink", "relative-symlink", "existing-symlink"],
)
def test_archive_in_refuses_escapes(disks_guest, loop_thread, members, setup, text, escaped):
    g = disks_guest
    _sh(g, loop_thread, f"rm -rf /srv/x; mkdir -p /srv/x; {setup or 'true'}")
    with pytest.raises(AgentError, match=text):
        _in(g, loop_thread, "/srv/x", _tar(*members))
    assert _sh(g, loop_thread, f"test ! -e {escaped} && echo absent") == "absent\n"
    loop_thread.run(g.agent.ping())


def test_archive_in_needs_an_existing_directory(disks_guest, loop_thread):
    data = _tar(_info("f", data=b"x"))
    with pytest.raises(AgentError, match="not a directory") as info:
        _in(disks_guest, loop_thread, "/etc/passwd", data)
    assert info.value.errno == 20
    with pytest.raises(AgentError, match="no such file or directory") as info:
        _in(disks_guest, loop_thread, "/no/such/dir", data)
    assert info.value.errno == 2


def test_archive_in_no_overwrite_dir_non_dir(disks_guest, loop_thread):
    g = disks_guest
    _sh(g, loop_thread, "rm -rf /srv/o; mkdir -p /srv/o/d")
    data = _tar(_info("d", data=b"file now"))
    with pytest.raises(AgentError, match="cannot overwrite directory"):
        _in(g, loop_thread, "/srv/o", data, no_overwrite_dir_non_dir=True)
    _in(g, loop_thread, "/srv/o", data)
    assert _sh(g, loop_thread, "cat /srv/o/d") == "file now"


def test_corrupt_archive_is_an_error(disks_guest, loop_thread):
    g = disks_guest
    _sh(g, loop_thread, "mkdir -p /srv/bad")
    with pytest.raises(AgentError, match="not a tar archive"):
        _in(g, loop_thread, "/srv/bad", b"\x01" * 1024)
    truncated = _tar(_info("f", data=b"y" * 5000))[:2048]
    with pytest.raises(AgentError, match="unexpected end"):
        _in(g, loop_thread, "/srv/bad", truncated)


# -- 200 MiB each way -----------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) << 10 for line in f if line.startswith("VmRSS:"))


async def _sample_rss(peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], _rss())
        await asyncio.sleep(0.05)


async def _ping_while(agent, slowest: list[float], stop: asyncio.Event) -> None:
    """PINGs the agent while a transfer runs; slowest[0]: the longest round trip."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t0 = loop.time()
        await agent.ping()
        slowest[0] = max(slowest[0], loop.time() - t0)
        await asyncio.sleep(0.2)


def test_200mib_streams_each_way_with_bounded_memory(disks_guest, loop_thread):
    """A 200 MiB file goes in as a streamed tar and comes back out; neither the host
    side (this process) nor the agent holds it in memory, and the agent answers
    other commands meanwhile."""
    g = disks_guest
    loop_thread.run(g.agent.create_container("bigc", [_image(), p.Mount("block", "big", "/big")]))
    sent = hashlib.sha256()

    async def source():
        info = tarfile.TarInfo("blob")
        info.size = BIG
        yield info.tobuf(tarfile.USTAR_FORMAT)
        rng = random.Random(7)
        for _ in range(BIG // CHUNK):
            chunk = rng.randbytes(CHUNK)
            sent.update(chunk)
            yield chunk
        yield b"\0" * 1024

    async def scenario():
        stop, peak, slowest = asyncio.Event(), [0], [0.0]
        base = _rss()
        sampler = asyncio.create_task(_sample_rss(peak, stop))
        pinger = asyncio.create_task(_ping_while(g.agent, slowest, stop))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await g.agent.archive_in("bigc", "/big", source(), timeout=600)
        t1 = loop.time()
        st, chunks = await g.agent.archive_out("bigc", "/big/blob")
        got, head, total = hashlib.sha256(), b"", 0
        async for chunk in chunks:
            if len(head) < 512:
                take = 512 - len(head)
                head, chunk = head + chunk[:take], chunk[take:]
            data = chunk[: max(BIG - total, 0)]
            got.update(data)
            total += len(chunk)
        t2 = loop.time()
        stop.set()
        await sampler
        await pinger
        return st, got.hexdigest(), total, (base, peak[0]), (t1 - t0, t2 - t1, slowest[0])

    try:
        st, digest, total, rss, (t_in, t_out, ping) = loop_thread.run(scenario(), timeout=1200)
        hwm = _sh(g, loop_thread, "grep VmHWM /proc/1/status", cid="bigc").split()[1]
    finally:
        loop_thread.run(g.agent.remove_container("bigc"))
    print(
        f"200 MiB in: {t_in:.1f} s, out: {t_out:.1f} s; host RSS {rss[0] >> 20} MiB before,"
        f" peak {rss[1] >> 20} MiB; agent peak RSS {int(hwm) >> 10} MiB;"
        f" slowest PING meanwhile {ping:.2f} s"
    )
    assert st.size == BIG and digest == sent.hexdigest()
    assert total == BIG + 1024  # the data, then the two end blocks
    assert rss[1] - rss[0] < 64 << 20
    assert int(hwm) << 10 < 32 << 20
    assert ping < 5  # the agent kept serving commands (each transfer took far longer)
