"""Reference parsing follows distribution/reference normalisation."""

import pytest

from hyperd.images import InvalidReference, parse_reference
from hyperd.images.manifest import Platform, parse_platform

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "text, full, familiar",
    [
        ("nginx", "docker.io/library/nginx:latest", "nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25", "nginx:1.25"),
        ("library/nginx", "docker.io/library/nginx:latest", "nginx:latest"),
        ("docker.io/nginx", "docker.io/library/nginx:latest", "nginx:latest"),
        ("index.docker.io/library/nginx", "docker.io/library/nginx:latest", "nginx:latest"),
        ("user/repo", "docker.io/user/repo:latest", "user/repo:latest"),
        ("user/repo/sub:v1", "docker.io/user/repo/sub:v1", "user/repo/sub:v1"),
        ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"),
        ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
        ("localhost:5000/x:tag", "localhost:5000/x:tag", "localhost:5000/x:tag"),
        ("127.0.0.1:5000/a/b:v1.2_3-x", "127.0.0.1:5000/a/b:v1.2_3-x", None),
        ("quay.io/org/app", "quay.io/org/app:latest", "quay.io/org/app:latest"),
        ("[::1]:5000/app", "[::1]:5000/app:latest", None),
        (f"busybox@{D}", f"docker.io/library/busybox@{D}", f"busybox@{D}"),
        (f"busybox:1.36@{D}", f"docker.io/library/busybox:1.36@{D}", f"busybox:1.36@{D}"),
        (f"host:5000/x@{D}", f"host:5000/x@{D}", None),
        ("a-b_c__d/e.f--g", "docker.io/a-b_c__d/e.f--g:latest", None),
        ("a.b/c", "a.b/c:latest", "a.b/c:latest"),
        ("Registry.Example.com/app", "Registry.Example.com/app:latest", None),
    ],
)
def test_parse(text, full, familiar):
    ref = parse_reference(text)
    assert str(ref) == full
    if familiar:
        assert ref.familiar() == familiar
    assert parse_reference(str(ref)) == ref


def test_fields():
    ref = parse_reference(f"localhost:5000/team/app:v2@{D}")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        "localhost:5000",
        "team/app",
        "v2",
        D,
    )
    assert ref.name == "localhost:5000/team/app"
    assert parse_reference("nginx", default_tag=False).tag is None


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "empty"),
        ("Nginx", "lowercase"),
        ("user/Repo", "lowercase"),
        ("nginx:", "tag"),
        ("nginx:-bad", "tag"),
        ("nginx:" + "a" * 129, "tag"),
        ("nginx@sha256:abc", "digest"),
        ("nginx@sha256:" + "A" * 64, "digest"),
        ("nginx@md5", "digest"),
        ("a" * 64, "64-byte"),
        ("nginx latest", "whitespace"),
        ("-bad/repo", "repository"),
        ("repo/", "repository"),
        ("a//b", "repository"),
        ("a/b_-c", "repository"),
        ("host:port/x", "registry host"),
        ("x/" + "a" * 260, "255"),
        (":tag", "repository"),
    ],
)
def test_invalid(text, problem):
    with pytest.raises(InvalidReference, match=problem):
        parse_reference(text)


def test_invalid_reference_is_a_400_hyper_error():
    from hyperd.errors import HyperError

    with pytest.raises(HyperError) as exc:
        parse_reference("UPPER")
    assert exc.value.status == 400
    assert exc.value.to_dict()["kind"] == "InvalidArgument"


def test_platform_parse():
    assert parse_platform("linux/arm64") == Platform("linux", "arm64")
    assert parse_platform("linux/arm/v7") == Platform("linux", "arm", "v7")
    assert parse_platform("linux/x86_64") == Platform("linux", "amd64")
    assert str(parse_platform("linux/arm/v7")) == "linux/arm/v7"
    assert Platform("linux", "arm64").matches({"os": "linux", "architecture": "arm64"})
    assert not Platform("linux", "arm", "v7").matches(
        {"os": "linux", "architecture": "arm", "variant": "v6"}
    )
    with pytest.raises(Exception, match="os/arch"):
        parse_platform("linux")
