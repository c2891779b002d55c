"""The docker CLI's image-out verbs against hyperd and real VMs: diff, commit, export,
import, history and push (to a docker-registry on loopback, pulled back by digest)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
from docker import errors as docker_errors

from tests.images.conftest import start_registry
from tests.workdir import qemu_workdir

pytestmark = pytest.mark.vm

# A container that adds, changes and deletes: a new tree, a changed file and a deleted
# one of the image's, a whole directory of the image removed, a file added in /tmp.
SCRIPT = (
    "mkdir -p /newdir/sub && echo hi > /newdir/sub/f && echo me:x:1:1 >> /etc/passwd"
    " && rm /etc/group && rm -rf /usr && touch /tmp/t"
)
DIFF = ["C /etc", "D /etc/group", "C /etc/passwd", "A /newdir", "A /newdir/sub",
        "A /newdir/sub/f", "C /tmp", "A /tmp/t", "D /usr"]  # fmt: skip


def test_diff_commit_export_of_a_stopped_container(docker, name):
    docker.ok("run", "--name", name, "busybox", "sh", "-c", SCRIPT)
    assert docker.ok("diff", name).split("\n")[:-1] == DIFF
    image = f"committed-{name}:v1"
    out = docker.ok(
        "commit", "-a", "me", "-m", "my change", "-c", 'CMD ["cat", "/newdir/sub/f"]', name, image
    )
    image_id = out.strip()
    assert image_id.startswith("sha256:")
    try:
        assert docker.ok("run", "--rm", image) == "hi\n"
        show = "ls -a /; echo @; ls -a /etc; echo @; ls -a /tmp; echo @; cat /etc/passwd"
        top, etc, tmp, passwd = docker.ok("run", "--rm", image, "sh", "-c", show).split("@\n")
        assert "usr" not in top.split() and "newdir" in top.split()
        assert "group" not in etc.split() and "passwd" in etc.split()
        assert "t" in tmp.split()
        assert passwd.endswith("me:x:1:1\n")
        info = json.loads(docker.ok("image", "inspect", image))[0]
        busybox = json.loads(docker.ok("image", "inspect", "busybox"))[0]
        assert info["Parent"] == busybox["Id"] and info["Author"] == "me"
        assert info["Comment"] == "my change"
        assert len(info["RootFS"]["Layers"]) == len(busybox["RootFS"]["Layers"]) + 1
        history = docker.ok("history", "--no-trunc", "--format", "{{.ID}}|{{.Comment}}", image)
        assert history.split("\n")[0] == f"{image_id}|my change"
        exported = docker(*["export", name]).stdout
        names = (
            subprocess.run(["tar", "t"], input=exported, capture_output=True, check=True)
            .stdout.decode()
            .split("\n")
        )
        assert "newdir/sub/f" in names and "bin/busybox" in names
        assert not any(n.startswith("usr") for n in names) and "etc/group" not in names
    finally:
        docker("rmi", "-f", image)


def test_commit_of_a_running_container_pauses_it_only_meanwhile(docker, name):
    loop = "i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.1; done"
    docker.ok("run", "-d", "--name", name, "busybox", "sh", "-c", loop)
    image = f"running-{name}:v1"
    try:
        time.sleep(1)
        docker.ok("commit", name, image)
        first = int(docker.ok("exec", name, "cat", "/count"))
        time.sleep(1.5)
        assert int(docker.ok("exec", name, "cat", "/count")) > first  # it runs again
        assert int(docker.ok("run", "--rm", image, "cat", "/count")) > 0
        assert docker.ok("run", "--rm", image, "sh", "-c", "echo $0") == "sh\n"  # its config
    finally:
        docker("rm", "-f", name)
        docker("rmi", "-f", image)


def test_import_with_changes_and_from_stdin(docker, name, tmp_path):
    docker.ok("run", "--name", name, "busybox", "sh", "-c", "echo imported > /hello")
    tar = tmp_path / "fs.tar"
    tar.write_bytes(docker("export", name).stdout)
    image = f"imported-{name}"
    try:
        out = docker.ok("import", "-c", 'CMD ["cat", "/hello"]', "-m", "from a file", str(tar),
                        f"{image}:a")  # fmt: skip
        assert out.strip().startswith("sha256:")
        assert docker.ok("run", "--rm", f"{image}:a") == "imported\n"
        history = docker.ok("history", "--format", "{{.Comment}}", f"{image}:a")
        assert history.strip() == "from a file"
        docker.ok("import", "-", f"{image}:b", input=tar.read_bytes())
        assert docker.ok("run", "--rm", f"{image}:b", "cat", "/hello") == "imported\n"
        res = docker("import", "http://192.0.2.1/x.tar", f"{image}:c")
        assert res.returncode != 0 and b"loopback" in res.stderr
    finally:
        docker("rmi", "-f", f"{image}:a", f"{image}:b")


def test_commit_errors(docker, name, hyperd):
    """A device node in the layer, a bad name, a bad change, an unknown container: clear
    errors, and no image is left behind."""
    docker.ok("run", "--name", name, "busybox", "mknod", "/devnode", "c", "1", "3")
    before = docker.ok("images", "-aq", "--no-trunc")
    res = docker("commit", name, f"dev-{name}")
    assert res.returncode != 0
    assert b"cannot commit /devnode: it is a device node" in res.stderr
    api = hyperd.client().api
    with pytest.raises(docker_errors.APIError, match="invalid reference format"):
        api.commit(name, repository="Not/Lower:Case")
    with pytest.raises(docker_errors.APIError, match="run is not a valid change command"):
        api.commit(name, changes=["RUN echo no"])
    with pytest.raises(docker_errors.NotFound):
        api.commit("no-such-container")
    assert docker.ok("images", "-aq", "--no-trunc") == before


def test_push_and_pull_back_by_digest(docker, name, registry):
    docker.ok("run", "--name", name, "busybox", "sh", "-c", "echo pushed > /p")
    ref = f"{registry.host}/hyper-test/{name}:v1"
    docker.ok("commit", name, ref)
    out = docker.ok("push", ref)
    assert "Pushed" in out and "v1: digest: sha256:" in out
    digest = json.loads(docker.ok("image", "inspect", ref))[0]["RepoDigests"][0].split("@")[1]
    skopeo = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
        capture_output=True,
        check=True,
    )
    assert json.loads(skopeo.stdout)["Digest"] == digest
    docker.ok("rmi", ref)
    docker.ok("pull", f"{registry.host}/hyper-test/{name}@{digest}")
    assert docker.ok("run", "--rm", f"{registry.host}/hyper-test/{name}@{digest}",
                     "cat", "/p") == "pushed\n"  # fmt: skip
    res = docker("push", f"nohost-{name}:v1")
    assert res.returncode != 0


@pytest.fixture(scope="module")
def basic_registry():
    """A docker-registry on loopback that wants alice:s3cret (htpasswd)."""
    workdir = qemu_workdir("hyper-dockercli-authreg-")
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(
        subprocess.run(
            ["htpasswd", "-Bbn", "alice", "s3cret"], capture_output=True, check=True, text=True
        ).stdout
    )
    reg = start_registry(workdir, htpasswd)
    yield reg
    reg.proc.terminate()
    reg.proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


def test_push_with_docker_login_credentials(docker, name, basic_registry):
    host = basic_registry.host
    ref = f"{host}/hyper-test/{name}:v1"
    docker.ok("tag", "busybox", ref)
    res = docker("push", ref)
    assert res.returncode != 0 and b"authentication required; log in first" in res.stderr
    docker.ok("login", "-u", "alice", "--password-stdin", host, input=b"s3cret\n")
    out = docker.ok("push", ref)
    digest = json.loads(docker.ok("image", "inspect", ref))[0]["RepoDigests"][0].split("@")[1]
    assert f"v1: digest: {digest}" in out
    skopeo = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--creds", "alice:s3cret", f"docker://{ref}"],
        capture_output=True,
        check=True,
    )
    assert json.loads(skopeo.stdout)["Digest"] == digest
    docker.ok("logout", host)
