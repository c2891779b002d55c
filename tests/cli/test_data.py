"""Data in and out of containers with the `hyper` CLI against the shared real daemon: bind
mounts, named and anonymous volumes, `volume` commands, `cp` with running and stopped
containers (real VMs).

One running container serves the bind, volume, volume-in-use and running-cp tests; volumes and
containers made here carry the label hyper-test=<this module's run>, so the prune only ever
sees this module's volumes.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import uuid

import pytest

from tests.workdir import qemu_workdir

pytestmark = pytest.mark.vm
IMG = "busybox"
RUN = uuid.uuid4().hex[:8]
LABEL = f"hyper-test={RUN}"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _ok(res) -> str:
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    return res.stdout.decode()


def _refused(res, message: str) -> None:
    """Exit 125 and one line on stderr naming the problem."""
    assert res.returncode == 125, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hyper: ") and message in lines[0], lines


class Runner:
    """The module's running container and what its fixture saw while making it."""

    def __init__(self, name, host, vol, first_run):
        self.name, self.host, self.vol, self.first_run = name, host, vol, first_run


@pytest.fixture(scope="module")
def runner(daemon):
    """A named volume written by a first run (stdout alone attached), then a running
    container with it at /vol (--mount), a host directory bound at /host and a tmpfs."""
    host = qemu_workdir("hyper-bind-")
    name, vol = _name("data"), _name("vol")
    script = "echo persisted > /data/f; echo out; echo err >&2"
    first = daemon.hyper(
        "run", "--rm", "-a", "stdout", "-v", f"{vol}:/data", IMG, "sh", "-c", script
    )
    _ok(
        daemon.hyper(
            "run", "-d", "--name", name, "--label", LABEL, "-v", f"{host}:/host",
            "--mount", f"type=volume,src={vol},dst=/vol", "--tmpfs", "/scratch:size=8m",
            IMG, "sleep", "100000",
        )
    )  # fmt: skip
    yield Runner(name, host, vol, first)
    daemon.hyper("rm", "-f", name)
    daemon.hyper("volume", "rm", vol)
    for p in sorted(host.rglob("*"), reverse=True):
        p.unlink() if not p.is_dir() else p.rmdir()
    host.rmdir()


def test_bind_mount_both_ways(hyperd, runner):
    (runner.host / "from-host").write_text("written on the host\n")
    assert (
        _ok(hyperd.hyper("exec", runner.name, "cat", "/host/from-host")) == "written on the host\n"
    )
    _ok(hyperd.hyper("exec", runner.name, "sh", "-c", "echo written in the vm > /host/from-vm"))
    assert (runner.host / "from-vm").read_text() == "written in the vm\n"


def test_named_volume_across_two_runs(hyperd, runner):
    """The running container sees the file the first run left in the volume; -a stdout
    attached stdout alone; the tmpfs is there."""
    res = runner.first_run
    assert (res.returncode, res.stdout, res.stderr) == (0, b"out\n", b"")
    assert _ok(hyperd.hyper("exec", runner.name, "cat", "/vol/f")) == "persisted\n"
    mounts = _ok(hyperd.hyper("exec", runner.name, "cat", "/proc/mounts")).splitlines()
    assert any(line.split()[1:3] == ["/scratch", "tmpfs"] for line in mounts), mounts


def test_volume_snapshot_of_a_volume_in_use_and_a_volume_made_from_it(hyperd, runner):
    """`volume snapshot` of the running container's volume keeps the content of that moment;
    `volume create --from-snapshot` starts a new volume with it; `snapshots` lists, and
    `snapshot-rm` removes, the snapshot."""
    snap, copy = _name("snap"), _name("fromsnap")
    _ok(hyperd.hyper("exec", runner.name, "sh", "-c", "echo before > /vol/g"))
    assert _ok(hyperd.hyper("volume", "snapshot", runner.vol, snap)) == f"{snap}\n"
    _ok(hyperd.hyper("exec", runner.name, "sh", "-c", "echo after > /vol/g"))
    table = _ok(hyperd.hyper("volume", "snapshots", runner.vol)).splitlines()
    assert table[0].split() == ["SNAPSHOT", "VOLUME", "CREATED", "SIZE"]
    assert [row.split()[:2] for row in table[1:]] == [[snap, runner.vol]]
    assert _ok(hyperd.hyper("volume", "create", "--from-snapshot", snap, copy)) == f"{copy}\n"
    try:
        out = _ok(hyperd.hyper("run", "--rm", "-v", f"{copy}:/d", IMG, "cat", "/d/f", "/d/g"))
        assert out == "persisted\nbefore\n"
        assert _ok(hyperd.hyper("exec", runner.name, "cat", "/vol/g")) == "after\n"
    finally:
        _ok(hyperd.hyper("volume", "rm", copy))
    assert _ok(hyperd.hyper("volume", "snapshot-rm", snap)) == f"{snap}\n"
    assert _ok(hyperd.hyper("volume", "snapshots", "-q", runner.vol)) == ""
    _refused(hyperd.hyper("volume", "snapshot", "nope-volume"), "nope-volume")
    _refused(hyperd.hyper("volume", "snapshot-rm", snap), snap)


def test_volume_create_ls_inspect(hyperd):
    a, b = _name("va"), _name("vb")
    assert _ok(hyperd.hyper("volume", "create", "--label", LABEL, a)) == f"{a}\n"
    created = hyperd.hyper("volume", "create", "--name", b, "--label", LABEL, "-o", "size=64m")
    assert _ok(created) == f"{b}\n"
    table = _ok(hyperd.hyper("volume", "ls", "--filter", f"label={LABEL}")).splitlines()
    assert table[0] == "DRIVER    VOLUME NAME" and sorted(table[1:]) == [
        f"local     {a}",
        f"local     {b}",
    ]
    quiet = _ok(hyperd.hyper("volume", "ls", "-q", "--filter", f"name={b}"))
    assert quiet == f"{b}\n"
    (info,) = json.loads(_ok(hyperd.hyper("volume", "inspect", b)))
    assert list(info) == sorted(info)  # as docker volume inspect prints it
    assert (info["Name"], info["Driver"], info["Scope"]) == (b, "local", "local")
    assert info["Labels"] == {"hyper-test": RUN} and info["Options"] == {"size": "64m"}
    assert _ok(hyperd.hyper("inspect", "-f", "{{.Name}} {{.Driver}}", a)) == f"{a} local\n"
    res = hyperd.hyper("volume", "inspect", a, "nope-volume")
    assert json.loads(res.stdout)[0]["Name"] == a
    _refused(res, "nope-volume")
    assert _ok(hyperd.hyper("volume", "remove", a, b)) == f"{a}\n{b}\n"


def test_volume_rm_and_prune(hyperd, runner):
    in_use = runner.vol
    keep, gone = _name("vk"), _name("vp")
    for vol in (keep, gone):
        _ok(hyperd.hyper("volume", "create", "--label", LABEL, vol))
    _refused(hyperd.hyper("volume", "rm", in_use), in_use)
    assert _ok(hyperd.hyper("volume", "ls", "-q", "--filter", f"name={in_use}")) == f"{in_use}\n"
    res = hyperd.hyper("volume", "prune", "--filter", f"label={LABEL}", input=b"n\n")
    assert res.stdout.decode().startswith("WARNING! This will remove all local volumes")
    assert _ok(hyperd.hyper("volume", "ls", "-q", "--filter", f"name={gone}")) == f"{gone}\n"
    res = hyperd.hyper("volume", "rm", keep, "nope-volume")
    assert res.stdout == f"{keep}\n".encode()
    _refused(res, "nope-volume")
    assert _ok(hyperd.hyper("volume", "rm", "-f", "nope-volume")) == "nope-volume\n"
    out = _ok(hyperd.hyper("volume", "prune", "-f", "--filter", f"label={LABEL}"))
    assert out.startswith(f"Deleted Volumes:\n{gone}\n\nTotal reclaimed space: ")
    assert _ok(hyperd.hyper("volume", "ls", "-q", "--filter", f"label={LABEL}")) == ""


def test_rm_v_removes_the_anonymous_volumes(hyperd):
    name = _name("anon")
    _ok(hyperd.hyper("create", "--name", name, "--label", LABEL, "-v", "/anon", IMG, "true"))
    (mount,) = json.loads(_ok(hyperd.hyper("inspect", "-f", "{{json .Mounts}}", name)))
    assert mount["Destination"] == "/anon" and mount["Type"] == "volume"
    _ok(hyperd.hyper("volume", "inspect", mount["Name"]))
    _ok(hyperd.hyper("rm", "-v", name))
    _refused(hyperd.hyper("volume", "inspect", mount["Name"]), mount["Name"])


def _tree(root):
    """Directories, modes (setuid, private), relative and absolute symlinks, a hard link."""
    (root / "etc" / "empty").mkdir(parents=True)
    (root / "etc").chmod(0o750)
    (root / "bin").mkdir()
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho tool\n")
    (root / "bin" / "tool").chmod(0o4755)
    (root / "etc" / "secret").write_bytes(os.urandom(70_000))
    (root / "etc" / "secret").chmod(0o600)
    (root / "tool-link").symlink_to("bin/tool")
    (root / "abs-link").symlink_to("/etc/hostname")
    os.link(root / "bin" / "tool", root / "bin" / "tool-hard")


def _listing(root) -> dict:
    """Each path under root: its type and mode, its size, its link target, its content."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        link = os.readlink(path) if path.is_symlink() else ""
        data = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
        out[str(path.relative_to(root))] = (stat.filemode(st.st_mode), link, data)
    return out


def _container_listing(hyperd, name: str, path: str) -> list[str]:
    """``PATH MODE [LINK TARGET]`` for each path under ``path`` in the container."""
    script = (
        f"cd {path} && find . | sort | "
        'while read f; do echo "$f $(stat -c %A "$f") $(readlink "$f")"; done'
    )
    return [
        line.strip() for line in _ok(hyperd.hyper("exec", name, "sh", "-c", script)).splitlines()
    ]


def test_cp_tree_in_and_out_of_a_running_container(hyperd, runner, tmp_path):
    name = runner.name
    _tree(tmp_path / "tree")
    res = hyperd.hyper("cp", str(tmp_path / "tree"), f"{name}:/tmp/")
    assert (res.returncode, res.stdout, res.stderr) == (0, b"", b"")  # quiet: no terminal
    seen = _container_listing(hyperd, name, "/tmp/tree")
    assert "./bin/tool -rwsr-xr-x" in seen and "./etc/empty drwxr-xr-x" in seen
    assert "./etc drwxr-x---" in seen and "./etc/secret -rw-------" in seen
    assert "./tool-link lrwxrwxrwx bin/tool" in seen
    assert "./abs-link lrwxrwxrwx /etc/hostname" in seen
    _ok(hyperd.hyper("container", "cp", f"{name}:/tmp/tree", str(tmp_path / "back")))
    assert _listing(tmp_path / "back") == _listing(tmp_path / "tree")
    back = tmp_path / "back" / "bin"
    assert (back / "tool").stat().st_ino == (back / "tool-hard").stat().st_ino
    # the contents of a directory (/.) into an existing one; a file into a directory
    (tmp_path / "flat").mkdir()
    _ok(hyperd.hyper("cp", f"{name}:/tmp/tree/bin/.", str(tmp_path / "flat")))
    assert sorted(os.listdir(tmp_path / "flat")) == ["tool", "tool-hard"]
    _ok(hyperd.hyper("cp", "-L", f"{name}:/tmp/tree/tool-link", str(tmp_path / "flat")))
    assert (tmp_path / "flat" / "tool-link").read_bytes() == b"#!/bin/sh\necho tool\n"


def test_cp_tar_streams_on_stdin_and_stdout(hyperd, runner):
    name = runner.name
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("from-stdin")
        info.size, info.mode = 3, 0o640
        tar.addfile(info, io.BytesIO(b"abc"))
    _ok(hyperd.hyper("exec", name, "mkdir", "-p", "/tmp/in"))
    _ok(hyperd.hyper("cp", "-", f"{name}:/tmp/in", input=buf.getvalue()))
    res = hyperd.hyper("cp", f"{name}:/tmp/in", "-")
    assert res.returncode == 0, res.stderr
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tar:
        members = {m.name: m for m in tar}
        assert tar.extractfile(members["in/from-stdin"]).read() == b"abc"
    assert members["in/from-stdin"].mode == 0o640 and members["in"].isdir()
    _refused(hyperd.hyper("cp", "-", f"{name}:/tmp/in/from-stdin", input=b""), "must be a dir")


def test_cp_tree_in_and_out_of_a_stopped_container(hyperd, tmp_path):
    """Each request boots a short-lived VM of the container's disks."""
    name = _name("stopped")
    _ok(hyperd.hyper("create", "--name", name, "--label", LABEL, IMG, "true"))
    _tree(tmp_path / "tree")
    _ok(hyperd.hyper("cp", str(tmp_path / "tree"), f"{name}:/copied"))
    _ok(hyperd.hyper("cp", f"{name}:/copied", str(tmp_path / "back")))
    assert _listing(tmp_path / "back") == _listing(tmp_path / "tree")
    _ok(hyperd.hyper("rm", name))


@pytest.mark.parametrize(
    "args,message",
    [
        (["cp", "a", "b"], "must specify at least one container source"),
        (["cp", "c1:/a", "c2:/b"], "copying between containers is not supported"),
        (["cp", "/etc/hostname", "no-such-container:/tmp"], "No such container"),
        (["cp", "/nonexistent-source", "{c}:/tmp"], "lstat /nonexistent-source: no such file"),
        (["cp", "{c}:/nonexistent", "/tmp"], "Could not find the file /nonexistent"),
        (["cp", "/etc/hostname", "{c}:/tmp/nodir/"], "no such directory"),
        (["cp", "{c}:/tmp", "/etc/hostname"], "cannot copy directory"),
        (["volume", "create", "--name", "a1", "b1"], "conflicting options"),
    ],
)
def test_usage_and_copy_errors(hyperd, runner, args, message):
    _refused(hyperd.hyper(*(a.format(c=runner.name) for a in args)), message)
