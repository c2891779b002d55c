"""Images through `hyper` and hyperd, against the real local registry."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.images.conftest import registry  # noqa: F401  (the session's docker-registry)
from tests.images.imagebuilder import Entry, Pusher, build_image, d, f, sym

pytestmark = pytest.mark.vm


def _ok(res) -> str:
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    return res.stdout.decode()


@pytest.fixture(scope="module")
def remote_image(registry):  # noqa: F811
    """A two-layer busybox image in the registry; the second layer deletes a file."""
    busybox = Path("/bin/busybox").read_bytes()
    base = [
        d("bin"),
        f("bin/busybox", busybox, 0o755),
        *[sym(f"bin/{a}", "busybox") for a in ("sh", "cat", "ls", "echo")],
        d("etc"),
        f("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        f("etc/old", "to be deleted\n"),
    ]
    top = [f("etc/motd", "pulled from the registry\n"), Entry("etc/.wh.old")]
    img = build_image([base, top], config={"Cmd": ["cat", "/etc/motd"]})
    repo = f"hyper-test/bb{uuid.uuid4().hex[:6]}"
    Pusher(registry.url).push_image(repo, "v1", img)
    return f"{registry.host}/{repo}:v1"


def test_pull_list_run_save_load_rmi(hyperd, remote_image, tmp_path):
    out = _ok(hyperd.hyper("pull", remote_image))
    assert "Downloaded newer image" in out or "Pull complete" in out
    assert "up to date" in _ok(hyperd.hyper("pull", remote_image))
    listed = [
        json.loads(line) for line in _ok(hyperd.hyper("images", "--format", "json")).splitlines()
    ]
    assert any(remote_image.rsplit(":", 1)[0] in json.dumps(i) for i in listed)
    assert _ok(hyperd.hyper("run", "--rm", remote_image)) == "pulled from the registry\n"
    res = hyperd.hyper("run", "--rm", remote_image, "ls", "/etc")
    files = set(_ok(res).split())
    assert {"motd", "passwd"} <= files and "old" not in files  # the whiteout removed etc/old
    archive = tmp_path / "img.tar"
    _ok(hyperd.hyper("save", "-o", str(archive), remote_image))
    _ok(hyperd.hyper("rmi", remote_image))
    assert hyperd.hyper("inspect", "--type", "image", remote_image).returncode != 0
    assert "Loaded image" in _ok(hyperd.hyper("load", "-i", str(archive)))
    assert _ok(hyperd.hyper("run", "--rm", remote_image)) == "pulled from the registry\n"
    _ok(hyperd.hyper("rmi", remote_image))


def test_run_pulls_a_missing_image(hyperd, remote_image):
    hyperd.hyper("rmi", remote_image)
    res = hyperd.hyper("run", "--rm", remote_image)
    assert _ok(res) == "pulled from the registry\n"
    assert b"Unable to find image" in res.stderr
    _ok(hyperd.hyper("rmi", remote_image))


def test_rmi_refuses_an_image_in_use(hyperd, remote_image):
    _ok(hyperd.hyper("pull", "-q", remote_image))
    name = f"t-{uuid.uuid4().hex[:8]}"
    _ok(hyperd.hyper("create", "--name", name, remote_image))
    res = hyperd.hyper("rmi", remote_image)
    assert res.returncode != 0 and b"hyper: " in res.stderr
    _ok(hyperd.hyper("rm", name))
    _ok(hyperd.hyper("rmi", remote_image))
