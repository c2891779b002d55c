"""``docker build`` (the legacy builder: DOCKER_BUILDKIT=0) against hyperd: RUN steps in
real VMs, the cache, .dockerignore, -f, --build-arg, --target and failures."""

from __future__ import annotations

import io
import subprocess
import time

import pytest

from .conftest import DOCKER

pytestmark = pytest.mark.vm

DOCKERFILE = """\
FROM busybox AS base
ARG GREETING=hello
ENV APP=/app
WORKDIR $APP
COPY hello.txt .
RUN echo "$GREETING from RUN" > out.txt && cat hello.txt && echo to-stderr >&2
RUN rm hello.txt && mkdir -p /made/by/run
CMD ["cat", "/app/out.txt"]
"""


@pytest.fixture
def build(docker):
    """``docker build`` with the legacy builder (the one that speaks POST /build)."""

    def run(ctx, *args, ok: bool = True):
        res = subprocess.run(
            [DOCKER, "build", *args, str(ctx)],
            capture_output=True,
            env={**docker.env, "DOCKER_BUILDKIT": "0"},
            timeout=900,
        )
        if ok:
            assert res.returncode == 0, (res.stdout, res.stderr)
        return res

    return run


def test_multi_step_build_then_all_from_cache(docker, build, tmp_path, name):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "hello.txt").write_text("hi from the context\n")
    (ctx / "secret.key").write_text("never copied")
    (ctx / ".dockerignore").write_text("*.key\n")
    tag = f"built-{name}:v1"
    try:
        res = build(ctx, "-t", tag, "--build-arg", "GREETING=hey")
        out = res.stdout.decode()
        assert "Step 1/8 : FROM busybox AS base" in out and "Step 8/8 : CMD" in out
        assert "hi from the context" in out and "to-stderr" in out
        assert f"Successfully tagged {tag}" in out and "Using cache" not in out
        assert docker.ok("run", "--rm", tag) == "hey from RUN\n"
        listing = docker.ok("run", "--rm", tag, "sh", "-c", "ls -a /app; ls -d /made/by/run")
        assert listing.split() == [".", "..", "out.txt", "/made/by/run"]
        history = docker.ok("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag)
        assert "|1 GREETING=hey /bin/sh -c echo" in history

        started = time.monotonic()
        again = build(ctx, "-t", f"{tag}-again", "--build-arg", "GREETING=hey")
        took = time.monotonic() - started
        out = again.stdout.decode()
        assert out.count("Using cache") == 7 and "Running in" not in out
        assert took < 20, f"a build all from cache took {took:.1f} s"
        ids = {docker.ok("image", "inspect", "-f", "{{.Id}}", t) for t in (tag, f"{tag}-again")}
        assert len(ids) == 1
    finally:
        docker("rmi", "-f", tag, f"{tag}-again")


def test_failing_run_step_and_its_exit_code(build, tmp_path, name):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo before; exit 3\n")
    res = build(ctx, "-t", f"fails-{name}", ok=False)
    assert res.returncode != 0
    assert b"The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3" in (
        res.stdout + res.stderr
    )


def test_custom_dockerfile_target_and_copy_from(docker, build, tmp_path, name):
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "sub" / "data").write_text("payload")
    (ctx / "build.df").write_text(
        "FROM busybox AS first\nCOPY sub /staged/\n"
        "FROM scratch AS second\nCOPY --from=first /staged/data /data\n"
        'FROM busybox\nCOPY --from=second /data /final\nCMD ["cat", "/final"]\n'
    )
    tag = f"stages-{name}"
    try:
        build(ctx, "-f", str(ctx / "build.df"), "-t", f"{tag}:all")
        assert docker.ok("run", "--rm", f"{tag}:all") == "payload"
        build(ctx, "-f", str(ctx / "build.df"), "--target", "first", "-t", f"{tag}:first")
        assert docker.ok("run", "--rm", f"{tag}:first", "cat", "/staged/data") == "payload"
    finally:
        docker("rmi", "-f", f"{tag}:all", f"{tag}:first")


def test_hyper_build_with_a_dockerfile_outside_the_context(hyperd, docker, tmp_path, name):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "file.txt").write_text("in the context")
    (ctx / ".dockerignore").write_text("*.log\n")
    (ctx / "skip.log").write_text("ignored")
    outside = tmp_path / "elsewhere" / "Dockerfile"
    outside.parent.mkdir()
    outside.write_text('FROM busybox\nCOPY . /src/\nCMD ["ls", "-a", "/src"]\n')
    tag = f"hyper-built-{name}"
    res = hyperd.hyper("build", "-q", "-f", str(outside), "-t", tag, str(ctx), timeout=600)
    assert res.returncode == 0, res.stderr
    image_id = res.stdout.decode().strip()
    try:
        assert image_id == docker.ok("image", "inspect", "-f", "{{.Id}}", tag).strip()
        # neither the Dockerfile nor .dockerignore (which names it) is copied, as with docker
        assert docker.ok("run", "--rm", tag).split() == [".", "..", "file.txt"]
        history = hyperd.hyper("history", "--no-trunc", tag).stdout.decode()
        assert image_id in history and "COPY dir:" in history
    finally:
        docker("rmi", "-f", tag)


def test_api_build_of_a_bare_dockerfile_and_a_dockerfile_error(hyperd, docker, name):
    """docker-py's ``build(fileobj=..., custom_context=True)`` sends the Dockerfile itself as
    the body; a parse error comes back in the stream."""
    api = hyperd.client().api
    tag = f"bare-{name}"
    out = list(
        api.build(
            fileobj=io.BytesIO(b"FROM busybox\nLABEL made=bare\n"),
            custom_context=True,
            tag=tag,
            decode=True,
        )
    )
    try:
        assert f"Successfully tagged {tag}:latest\n" in [m.get("stream") for m in out]
        assert docker.ok("image", "inspect", "-f", "{{.Config.Labels.made}}", tag) == "bare\n"
    finally:
        docker("rmi", "-f", tag)
    out = list(api.build(fileobj=io.BytesIO(b"FROM busybox\nFORM x\n"), decode=True))
    assert out[-1]["error"] == "dockerfile parse error line 2: unknown instruction: FORM"
