"""Data with the real docker CLI: bind mounts (9p), named volumes (ext4 disks), tmpfs, and
docker cp both ways, for running and stopped containers."""

from __future__ import annotations

import io
import os
import signal
import stat
import tarfile
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm
IMG = "busybox"


def _vol() -> str:
    return f"v-{uuid.uuid4().hex[:8]}"


def test_bind_mount_both_ways_with_owners_and_ro_enforced(docker, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "from-host").write_text("made on the host\n")
    src.chmod(0o755)
    out = docker.ok(
        "run", "--rm", "-v", f"{src}:/data", IMG, "sh", "-c",
        "cat /data/from-host; echo from the guest > /data/from-guest; chmod 640 /data/from-guest",
    )  # fmt: skip
    assert out == "made on the host\n"
    made = src / "from-guest"
    assert made.read_text() == "from the guest\n"
    st = made.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o640)
    res = docker("run", "--rm", "-v", f"{src}:/data:ro", IMG, "touch", "/data/nope")
    assert res.returncode == 1 and b"Read-only file system" in res.stderr
    assert not (src / "nope").exists()


def test_v_creates_a_missing_host_dir_and_mount_refuses_it(docker, tmp_path):
    missing = tmp_path / "missing"
    docker.ok("run", "--rm", "-v", f"{missing}:/m", IMG, "true")
    assert missing.is_dir()
    res = docker("run", "--rm", "--mount", f"type=bind,src={tmp_path / 'absent'},dst=/m", IMG)
    assert res.returncode == 125 and b"does not exist" in res.stderr


def test_named_volume_outlives_its_container_and_a_daemon_kill(docker):
    vol = _vol()
    docker.ok("volume", "create", vol)
    docker.ok("run", "--rm", "-v", f"{vol}:/vol", IMG, "sh", "-c", "echo kept > /vol/file")
    docker.daemon.stop(signal.SIGKILL)
    docker.daemon.start()
    assert docker.ok("run", "--rm", "-v", f"{vol}:/vol:ro", IMG, "cat", "/vol/file") == "kept\n"
    assert vol in docker.ok("volume", "ls", "-q").split()
    docker.ok("volume", "rm", vol)


def test_new_volume_is_filled_from_the_image_once(docker):
    vol = _vol()
    listing = docker.ok("run", "--rm", "-v", f"{vol}:/etc", IMG, "ls", "/etc").split()
    assert "passwd" in listing
    docker.ok("run", "--rm", "-v", f"{vol}:/etc", IMG, "rm", "/etc/passwd")
    # used once: it is not filled again
    assert "passwd" not in docker.ok("run", "--rm", "-v", f"{vol}:/etc", IMG, "ls", "/etc")
    docker.ok("volume", "rm", vol)


def test_volume_in_use_cannot_be_removed_nor_mounted_twice_read_write(docker, name):
    vol = _vol()
    docker.ok("run", "-d", "--name", name, "-v", f"{vol}:/vol", IMG, "sleep", "600")
    try:
        res = docker("volume", "rm", vol)
        assert res.returncode == 1 and b"in use" in res.stderr
        res = docker("run", "--rm", "-v", f"{vol}:/vol", IMG, "true")
        assert res.returncode == 125 and b"one VM at a time" in res.stderr
    finally:
        docker.ok("rm", "-f", name)
    docker.ok("volume", "rm", vol)


def test_anonymous_volumes_go_with_rm_v(docker, name):
    docker.ok("create", "--name", name, "-v", "/anon", IMG, "true")
    vol = docker.ok("inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", name).strip()
    assert vol in docker.ok("volume", "ls", "-q").split()
    docker.ok("rm", "-v", name)
    assert vol not in docker.ok("volume", "ls", "-q").split()


def test_tmpfs_and_read_only_root(docker):
    out = docker.ok(
        "run", "--rm", "--read-only", "--tmpfs", "/scratch:size=1m", IMG, "sh", "-c",
        "echo ok > /scratch/f && cat /scratch/f; touch /nope 2>&1 | grep -o 'Read-only'",
    )  # fmt: skip
    assert out == "ok\nRead-only\n"


def _tree(root) -> dict:
    out = {}
    for path, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(path, n)
            st = os.lstat(p)
            link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else ""
            data = Path(p).read_bytes() if stat.S_ISREG(st.st_mode) else b""
            out[os.path.relpath(p, root)] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                link,
                data,
            )
    return out


@pytest.mark.parametrize("running", [True, False])
def test_docker_cp_round_trips_a_tree_with_modes_and_symlinks(docker, name, tmp_path, running):
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "script").write_text("#!/bin/sh\necho hi\n")
    (src / "sub" / "script").chmod(0o751)
    (src / "data").write_bytes(os.urandom(300_000))
    (src / "data").chmod(0o600)
    (src / "link").symlink_to("sub/script")
    docker.ok("run", "-d", "--name", name, IMG, "sleep", "600")
    if not running:
        docker.ok("stop", "-t", "0", name)
    docker.ok("cp", str(src), f"{name}:/tmp/")
    back = tmp_path / "back"
    docker.ok("cp", f"{name}:/tmp/tree", str(back))
    assert _tree(back) == _tree(src)
    if running:
        assert docker.ok("exec", name, "/tmp/tree/link") == "hi\n"
    docker.ok("rm", "-f", name)


def test_cp_refuses_a_tar_that_leaves_its_place(docker, name, tmp_path):
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../../escaped")
        payload = b"nope"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    docker.ok("run", "-d", "--name", name, IMG, "sleep", "600")
    try:
        res = docker("cp", "-", f"{name}:/tmp", input=evil.read_bytes())
        assert res.returncode != 0
        assert docker("exec", name, "ls", "/escaped").returncode != 0
    finally:
        docker.ok("rm", "-f", name)


def test_rm_force_keeps_what_the_container_wrote_to_a_volume(docker, name):
    vol = _vol()
    docker.ok("run", "-d", "--name", name, "-v", f"{vol}:/d", IMG, "sleep", "600")
    docker.ok("exec", name, "sh", "-c", "echo written > /d/f")
    docker.ok("rm", "-f", name)  # no stop: the guest's page cache is synced anyway
    assert docker.ok("run", "--rm", "-v", f"{vol}:/d", IMG, "cat", "/d/f") == "written\n"
    docker.ok("volume", "rm", vol)


def test_snapshot_of_a_volume_in_use_restores_the_old_content(docker, name):
    """A snapshot taken while a container writes is consistent (synced, VM paused), and a
    volume created from it has the content of that moment."""
    api = docker.daemon.client().api
    vol, snap, back = _vol(), _vol(), _vol()
    docker.ok("run", "-d", "--name", name, "-v", f"{vol}:/d", IMG, "sh", "-c",
              "echo before > /d/f; sleep 600")  # fmt: skip
    wait = "until [ -s /d/f ]; do sleep 0.1; done; cat /d/f"
    assert docker.ok("exec", name, "sh", "-c", wait) == "before\n"
    res = api._post(api._url("/volumes/{0}/snapshot", vol), params={"name": snap})
    assert res.status_code == 201 and res.json()["Volume"] == vol
    docker.ok("exec", name, "sh", "-c", "echo after > /d/f")
    docker.ok("rm", "-f", name)
    docker.ok("volume", "create", "--opt", f"snapshot={snap}", back)
    assert docker.ok("run", "--rm", "-v", f"{back}:/d", IMG, "cat", "/d/f") == "before\n"
    assert docker.ok("run", "--rm", "-v", f"{vol}:/d", IMG, "cat", "/d/f") == "after\n"
    listed = api._get(api._url("/snapshots"), params={"volume": vol}).json()
    assert [s["Name"] for s in listed] == [snap]
    assert api._delete(api._url("/snapshots/{0}", snap)).status_code == 204
    docker.ok("volume", "rm", vol, back)
