"""docker save / load archives and OCI layouts."""

import json
import os
import shutil
import subprocess
import tarfile

import pytest

from hyperd.images import DigestMismatch, ImageService, UnsupportedImage
from hyperd.images.rootfs import flatten

from .imagebuilder import build_image, d, f, hard, sym
from .treecmp import describe

pytestmark = pytest.mark.registry

needs_skopeo = pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo not installed")


def sample():
    return build_image(
        [
            [d("etc"), f("etc/a", os.urandom(1000)), sym("etc/l", "a"), hard("etc/h", "etc/a")],
            [d("etc"), f("etc/.wh.a"), f("etc/b", "b", 0o600, uid=7)],
        ]
    )


def tree_of(svc, rec, dest):
    dest.mkdir()
    flatten([svc.store.path(x.digest) for x in rec.layers], dest)
    return describe(dest)


@pytest.fixture
def pushed(registry, repo):
    img = sample()
    registry.pusher().push_image(repo, "v1", img)
    return f"{registry.host}/{repo}:v1", img


def test_save_load_roundtrip(tmp_path, service, pushed):
    name, img = pushed
    rec = service.pull(name)
    service.tag(name, "roundtrip:x")
    out = tmp_path / "saved.tar"
    service.save([name, "roundtrip:x"], out)
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= names
    assert manifest[0]["Config"] == f"blobs/sha256/{img.config_digest[7:]}"
    assert sorted(manifest[0]["RepoTags"]) == sorted([name, "roundtrip:x"])
    assert {m["annotations"]["io.containerd.image.name"] for m in index["manifests"]} == {
        name,
        "docker.io/library/roundtrip:x",
    }
    fresh = ImageService(tmp_path / "fresh")
    loaded = fresh.load(out)
    assert sorted(loaded) == sorted([name, "docker.io/library/roundtrip:x"])
    rec2 = fresh.resolve("roundtrip:x")
    assert rec2.id == rec.id and rec2.manifest_digest == rec.manifest_digest
    assert tree_of(fresh, rec2, tmp_path / "t2") == tree_of(service, rec, tmp_path / "t1")


@needs_skopeo
def test_our_save_is_readable_by_skopeo(tmp_path, service, pushed):
    name, _ = pushed
    service.pull(name)
    out = tmp_path / "saved.tar"
    service.save([name], out)
    for src in (f"docker-archive:{out}", f"oci-archive:{out}:v1"):
        dest = tmp_path / ("dir-" + src.split(":")[0])
        subprocess.run(["skopeo", "copy", "-q", src, f"dir:{dest}"], check=True)
        assert (dest / "manifest.json").exists()


@needs_skopeo
def test_load_skopeo_docker_archive(tmp_path, registry, service, pushed):
    name, img = pushed
    archive = tmp_path / "docker.tar"
    subprocess.run(
        ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{name}",
         f"docker-archive:{archive}:{name}"],
        check=True,
    )  # fmt: skip
    assert service.load(archive) == [name]
    rec = service.resolve(name)
    assert rec.id == img.config_digest  # same config, layers stored uncompressed
    ref_svc = ImageService(tmp_path / "ref")
    ref = ref_svc.pull(name)
    assert tree_of(service, rec, tmp_path / "a") == tree_of(ref_svc, ref, tmp_path / "b")
    assert service.rootfs_path(name).exists()


@needs_skopeo
def test_load_skopeo_oci_archive_and_layout(tmp_path, registry, service, pushed):
    name, img = pushed
    archive = tmp_path / "oci.tar"
    subprocess.run(
        ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{name}",
         f"oci-archive:{archive}:{name}"],
        check=True,
    )  # fmt: skip
    assert service.load(archive) == [name]
    assert service.resolve(name).id == img.config_digest

    layout = tmp_path / "layout"
    subprocess.run(
        ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{name}",
         f"oci:{layout}:v1"],
        check=True,
    )  # fmt: skip
    other = ImageService(tmp_path / "other")
    assert other.load(layout) == [img.config_digest]  # a bare tag names no repository
    assert other.resolve(img.config_digest[7:19]).tags == []


def test_load_rejects_corrupt_blob(tmp_path, service, pushed):
    name, img = pushed
    service.pull(name)
    good = tmp_path / "good.tar"
    service.save([name], good)
    bad = tmp_path / "bad.tar"
    victim = f"blobs/sha256/{img.layer_digests[1][7:]}"
    with tarfile.open(good) as src, tarfile.open(bad, "w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name == victim:
                data = bytes([data[0] ^ 1]) + data[1:]
            dst.addfile(m, __import__("io").BytesIO(data))
    fresh = ImageService(tmp_path / "fresh")
    with pytest.raises(DigestMismatch):
        fresh.load(bad)
    assert fresh.list() == []
    assert img.layer_digests[1] not in fresh.store.digests()


def test_load_rejects_non_archives(tmp_path, service):
    junk = tmp_path / "junk.tar"
    with tarfile.open(junk, "w") as tar:
        tar.add(__file__, arcname="hello.py")
    with pytest.raises(UnsupportedImage, match="neither manifest.json nor index.json"):
        service.load(junk)
    (tmp_path / "text").write_text("nope")
    with pytest.raises(UnsupportedImage):
        service.load(tmp_path / "text")


def test_load_legacy_docker_save_with_linked_layers(tmp_path, service):
    """The pre-25 layout: <id>/layer.tar (duplicates as symlinks), <hex>.json, repositories."""
    import gzip
    import hashlib
    import io

    from .imagebuilder import tar_bytes

    base = tar_bytes([d("etc"), f("etc/os-release", "ID=test\n")])
    top = tar_bytes([f("app", "#!/bin/sh\n", 0o755)])
    layers = [base, top, base]  # the same layer twice, as after `COPY` of identical content
    diff_ids = ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers]
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/app"]},
         "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()  # fmt: skip
    config_hex = hashlib.sha256(config).hexdigest()
    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(3)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for i, (lid, data) in enumerate(zip(ids, layers, strict=True)):
            add(f"{lid}/VERSION", b"1.0")
            add(f"{lid}/json", json.dumps({"id": lid}).encode())
            if i == 2:
                link = tarfile.TarInfo(f"{lid}/layer.tar")
                link.type, link.linkname = tarfile.SYMTYPE, f"../{ids[0]}/layer.tar"
                tar.addfile(link)
            else:
                add(f"{lid}/layer.tar", data)
        add(f"{config_hex}.json", config)
        manifest = [{"Config": f"{config_hex}.json", "RepoTags": ["legacy/app:1"],
                     "Layers": [f"{lid}/layer.tar" for lid in ids]}]  # fmt: skip
        add("manifest.json", json.dumps(manifest).encode())
        add("repositories", json.dumps({"legacy/app": {"1": ids[-1]}}).encode())
    archive = tmp_path / "legacy.tar.gz"
    archive.write_bytes(gzip.compress(buf.getvalue()))
    assert service.load(archive) == ["docker.io/legacy/app:1"]
    rec = service.resolve("legacy/app:1")
    assert rec.id == "sha256:" + config_hex
    assert [x.digest for x in rec.layers] == diff_ids
    assert service.image_config("legacy/app:1")["Cmd"] == ["/app"]
    assert service.rootfs_path("legacy/app:1").exists()
    assert service.inspect(rec.id)["RepoTags"] == ["legacy/app:1"]
