"""Images through the real docker CLI: pull from a registry, tag, images, save, load, rmi."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.registry


def test_pull_tag_images_save_rmi_load(docker, registry, tmp_path):
    ref = f"{registry.host}/hyper-test/busybox:latest"
    out = docker.ok("pull", ref)
    assert "Digest: sha256:" in out or "Status:" in out
    docker.ok("tag", ref, "retagged:v1")
    listed = docker.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert "retagged:v1" in listed.split() and ref in listed.split()
    image_id = docker.ok("image", "inspect", "--format", "{{.Id}}", "retagged:v1").strip()
    assert image_id.startswith("sha256:")

    archive = tmp_path / "saved.tar"
    docker.ok("save", "-o", str(archive), "retagged:v1")
    assert archive.stat().st_size > 100_000
    docker.ok("rmi", "retagged:v1")
    assert "retagged:v1" not in docker.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert "Loaded image: retagged:v1" in docker.ok("load", "-i", str(archive))
    assert docker.ok("run", "--rm", "retagged:v1", "echo", "from the loaded image") == (
        "from the loaded image\n"
    )
    docker.ok("rmi", "retagged:v1")


def test_pull_of_a_missing_image_is_a_clear_error(docker, registry):
    res = docker("pull", f"{registry.host}/hyper-test/nothing-here:latest")
    assert res.returncode == 1 and b"nothing-here" in res.stderr
