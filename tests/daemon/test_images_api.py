"""Images through docker-py as Docker has them: list filters (reference, dangling, label,
before, since), prune (dangling by default, every unused image with dangling=false, label
and until), save of one image by name or ID, and load's messages."""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import tarfile

import docker
import pytest

from tests.images.imagebuilder import build_image, f


def _archive(tags: list[str], created: str, labels: dict) -> bytes:
    """A docker-save archive of a one-layer image of its own."""
    img = build_image(
        [[f("id", secrets.token_hex(8))]],
        compression="none",
        config={"Labels": labels},
        created=created,
        docker_types=True,
    )
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for digest, blob in img.blobs.items():
            add(f"blobs/sha256/{digest[7:]}", blob)
        entry = {
            "Config": f"blobs/sha256/{img.config_digest[7:]}",
            "RepoTags": tags,
            "Layers": [f"blobs/sha256/{d[7:]}" for d in img.layer_digests],
        }
        add("manifest.json", json.dumps([entry]).encode())
    return out.getvalue()


def _load(api, data: bytes) -> list[str]:
    return [x["stream"] for x in api.load_image(data) if "stream" in x]


def _ids(api, **filters) -> set[str]:
    return {i["Id"] for i in api.images(filters=filters)}


@pytest.fixture
def loaded(api):
    """(Only labelled images are pruned here: the daemon's busybox must stay.)
    Three images: filt/old:1 (2020, stage=old), filt/new:1 (2024, stage=new) and one
    without a tag (2022)."""
    assert _load(api, _archive(["filt/old:1"], "2020-01-01T00:00:00Z", {"stage": "old"})) == [
        "Loaded image: filt/old:1\n"
    ]
    _load(api, _archive(["filt/new:1"], "2024-01-01T00:00:00Z", {"stage": "new"}))
    (line,) = _load(api, _archive([], "2022-01-01T00:00:00Z", {}))
    assert line.startswith("Loaded image ID: sha256:")
    ids = {
        "old": api.inspect_image("filt/old:1")["Id"],
        "new": api.inspect_image("filt/new:1")["Id"],
        "none": line.split()[-1],
    }
    yield ids
    for image_id in ids.values():
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_image(image_id, force=True)


def test_list_filters(api, loaded):
    assert _ids(api, reference="filt/*") == {loaded["old"], loaded["new"]}
    assert _ids(api, reference="filt/old") == {loaded["old"]}
    assert _ids(api, reference="filt/*:2") == set()
    assert loaded["none"] in _ids(api, dangling=True)
    assert not {loaded["old"], loaded["new"]} & _ids(api, dangling=True)
    assert loaded["none"] not in _ids(api, dangling=False)
    assert _ids(api, label="stage=new") == {loaded["new"]}
    assert _ids(api, label=["stage", "stage=old"]) == {loaded["old"]}
    before = _ids(api, before="filt/new:1")
    assert {loaded["old"], loaded["none"]} <= before and loaded["new"] not in before
    since = _ids(api, since="filt/old:1")
    assert {loaded["new"], loaded["none"]} <= since and loaded["old"] not in since
    with pytest.raises(docker.errors.APIError, match="dangling"):
        api.images(filters={"dangling": "maybe"})
    with pytest.raises(docker.errors.APIError, match="invalid filter 'colour'"):
        api.images(filters={"colour": "red"})


def test_reference_filter_lists_the_tags_it_matches(api, loaded):
    api.tag("filt/old:1", "filt/other", "x")
    (row,) = api.images("filt/other")
    assert row["RepoTags"] == ["filt/other:x"]
    (row,) = api.images(filters={"reference": "filt/old:1"})
    assert row["RepoTags"] == ["filt/old:1"]


def test_prune(api, loaded):
    result = api.prune_images()
    assert {"Deleted": loaded["none"]} in result["ImagesDeleted"]
    assert {loaded["old"], loaded["new"]} <= _ids(api)  # tagged: kept by default
    result = api.prune_images({"label": "stage=old", "dangling": False})
    assert {"Untagged": "filt/old:1"} in result["ImagesDeleted"]
    assert result["SpaceReclaimed"] > 0 and loaded["old"] not in _ids(api)
    c = api.create_container("filt/new:1", "true")  # in use: never pruned
    try:
        result = api.prune_images(
            {"until": "2030-01-01T00:00:00Z", "dangling": False, "label": "stage"}
        )
        assert loaded["new"] in _ids(api)
        assert loaded["new"] not in json.dumps(result)
    finally:
        api.remove_container(c)
    result = api.prune_images(
        {"until": "2023-01-01T00:00:00Z", "dangling": False, "label": "stage"}
    )
    assert loaded["new"] in _ids(api)  # made after the until


def test_save_one_image_by_name_or_id_and_load_it(api, loaded):
    by_name = b"".join(api.get_image("filt/new:1"))
    by_id = b"".join(api.get_image(loaded["new"]))
    api.remove_image(loaded["new"], force=True)
    assert _load(api, by_id) == [f"Loaded image ID: {loaded['new']}\n"]
    assert _load(api, by_name) == ["Loaded image: filt/new:1\n"]
    assert api.inspect_image("filt/new:1")["Id"] == loaded["new"]
