"""Content store, image index, tags and removal with garbage collection."""

import os

import pytest

from hyperd.images import DigestMismatch, ImageInUse, ImageNotFound, ImageService
from hyperd.images.manifest import Descriptor
from hyperd.images.store import ContentStore

from .imagebuilder import build_image, d, digest_of, f


def test_blob_write_is_verified_and_atomic(tmp_path):
    store = ContentStore(tmp_path)
    good = store.write(b"hello")
    assert good == digest_of(b"hello")
    assert store.read(good) == b"hello"
    with pytest.raises(DigestMismatch):
        store.write(b"hello", digest_of(b"other"))
    with pytest.raises(DigestMismatch), store.ingest(Descriptor("", digest_of(b"abc"), 3)) as out:
        out.write(b"abd")
    assert store.digests() == {good}
    assert not list(store.ingest_dir.iterdir())
    with pytest.raises(RuntimeError), store.ingest() as out:
        out.write(b"partial")
        raise RuntimeError("interrupted")
    assert store.digests() == {good}
    assert not list(store.ingest_dir.iterdir())


@pytest.mark.registry
def test_rmi_frees_blobs_but_keeps_shared(registry, service, repo):
    base = [d("base"), f("base/big", os.urandom(3000))]
    a = build_image([base, [f("a", "a")]])
    b = build_image([base, [f("b", "b")]])
    pusher = registry.pusher()
    pusher.push_image(repo, "a", a)
    pusher.push_image(repo, "b", b)
    name_a, name_b = f"{registry.host}/{repo}:a", f"{registry.host}/{repo}:b"
    ra, rb = service.pull(name_a), service.pull(name_b)
    disk_a = service.rootfs_path(name_a)
    shared = a.layer_digests[0]
    assert shared == b.layer_digests[0]

    out = service.remove(name_a)
    assert out[0] == {"Untagged": f"{registry.host}/{repo}:a"}
    assert out[-1] == {"Deleted": ra.id}
    left = service.store.digests()
    assert shared in left and a.layer_digests[1] not in left and ra.manifest_digest not in left
    assert ra.config_digest not in left
    assert not disk_a.exists()
    with pytest.raises(ImageNotFound):
        service.resolve(name_a)

    service.remove(rb.id)
    assert service.store.digests() == set()
    assert service.list() == []


@pytest.mark.registry
def test_tags_and_forced_removal(registry, service, repo):
    img = build_image([[f("x", "x")]])
    registry.pusher().push_image(repo, "v1", img)
    src = f"{registry.host}/{repo}:v1"
    rec = service.pull(src)
    ref = service.tag(src, "myapp:prod")
    assert str(ref) == "docker.io/library/myapp:prod"
    assert sorted(service.inspect("myapp:prod")["RepoTags"]) == sorted(["myapp:prod", src])

    with pytest.raises(ImageInUse, match="multiple repositories"):
        service.remove(rec.id)
    assert service.remove("myapp:prod") == [{"Untagged": "myapp:prod"}]
    assert service.resolve(src).id == rec.id  # still there under the other name

    service.tag(src, "other/app")
    out = service.remove(rec.id[7:19], force=True)
    assert {"Deleted": rec.id} in out
    assert service.list() == []


@pytest.mark.registry
def test_in_use_images_need_force(registry, tmp_path, repo):
    img = build_image([[f("x", "x")]])
    registry.pusher().push_image(repo, "v", img)
    svc = ImageService(tmp_path / "s", in_use=lambda image_id: True)
    name = f"{registry.host}/{repo}:v"
    rec = svc.pull(name)
    with pytest.raises(ImageInUse, match="container"):
        svc.remove(name)
    assert svc.resolve(name).id == rec.id
    assert {"Deleted": rec.id} in svc.remove(name, force=True)


def test_unknown_image(service):
    with pytest.raises(ImageNotFound, match="No such image: nothing:here"):
        service.resolve("nothing:here")
    with pytest.raises(ImageNotFound):
        service.remove("sha256:" + "0" * 64)
    with pytest.raises(ImageNotFound):
        service.rootfs_path("abcdef")
