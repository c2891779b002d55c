"""The builder on everything but RUN (which needs VMs: tests/docker_cli/test_build.py):
COPY/ADD, WORKDIR, metadata, build args, stages, the cache, labels, errors."""

from __future__ import annotations

import asyncio
import gzip
import io
import lzma
import tarfile
from pathlib import Path

import pytest
import zstandard
from multidict import MultiDict

from hyperd.api.build import decode
from hyperd.errors import HyperError, NotFound
from hyperd.images.build.builder import Builder, BuildOptions
from hyperd.images.build.cache import prune
from hyperd.images.build.context import BuildContext
from hyperd.images.build.run import BuildError
from hyperd.images.manifest import load_json
from hyperd.images.rootfs import flatten

from .imagebuilder import d, f, sym
from .localimage import local_image
from .treecmp import describe

PASSWD = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n"
BASE = [d("etc"), f("etc/passwd", PASSWD), f("etc/group", "root:x:0:\nwww:x:33:\n"),
        d("usr"), d("usr/local"), sym("opt", "usr/local")]  # fmt: skip


@pytest.fixture
def base(service):
    return local_image(service, [BASE], {"Cmd": ["sh"], "Env": ["PATH=/bin"]}, "base:1")


def build(service, ctx: Path, dockerfile: str, **options) -> tuple[str | None, list[dict]]:
    """Run a build of ``ctx`` (Dockerfile text written into it); (image ID, output)."""
    (ctx / "Dockerfile").write_text(dockerfile)
    events: list[dict] = []
    work = ctx.parent / f"work-{len(list(ctx.parent.iterdir()))}"
    work.mkdir()
    builder = Builder(
        service, None, BuildContext(ctx), BuildOptions(**options), events.append, work
    )
    return asyncio.run(builder.build()), events


def stream(events) -> str:
    return "".join(e.get("stream", "") for e in events)


def tree(service, image_id, where: Path) -> dict:
    rec = service.resolve(image_id)
    where.mkdir()
    flatten([service.store.path(x.digest) for x in rec.layers], where)
    return {k: v for k, v in describe(where, mtimes=False).items() if k != "#hardlinks"}


def config(service, image_id) -> dict:
    return service.full_config(image_id)["config"]


@pytest.fixture
def ctx(tmp_path) -> Path:
    c = tmp_path / "ctx"
    c.mkdir()
    (c / "hello.txt").write_text("hi")
    (c / "dir").mkdir()
    (c / "dir" / "a").write_text("a")
    (c / "dir" / "sub").mkdir()
    (c / "dir" / "sub" / "b").write_text("b")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("pkg/data")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"data"))
    (c / "pkg.tar.gz").write_bytes(gzip.compress(buf.getvalue()))
    return c


DOCKERFILE = """\
FROM base:1
ARG WHO=world
ENV APP=/srv/app
WORKDIR $APP
COPY hello.txt .
COPY dir /opt/copied/
COPY --chown=www:www hello.txt /etc/owned
ADD pkg.tar.gz /unpacked/
USER www
LABEL greeting="hello $WHO"
CMD ["cat", "hello.txt"]
"""


def test_build_without_run_gives_the_tree_and_config(service, base, ctx, tmp_path):
    image_id, events = build(service, ctx, DOCKERFILE, tags=["built:1"], buildargs={"WHO": "x"})
    out = stream(events)
    assert "Step 1/11 : FROM base:1\n" in out and "Step 11/11 : CMD" in out
    assert events[-3] == {"aux": {"ID": image_id}}
    assert out.endswith(f"Successfully built {image_id[7:19]}\nSuccessfully tagged built:1\n")
    t = tree(service, image_id, tmp_path / "t")
    assert t["srv/app/hello.txt"][0:4] == (0o100000, 0o644, 0, 0)
    assert "usr/local/copied/a" in t and "usr/local/copied/sub/b" in t  # /opt is a symlink
    assert t["etc/owned"][2:4] == (33, 33)
    assert "unpacked/pkg/data" in t and "pkg.tar.gz" not in str(t)
    cfg = config(service, image_id)
    assert cfg["WorkingDir"] == "/srv/app" and cfg["User"] == "www"
    assert cfg["Labels"] == {"greeting": "hello x"} and cfg["Cmd"] == ["cat", "hello.txt"]
    assert service.inspect(image_id)["Parent"]  # each step's image is the next one's parent


def test_second_build_is_all_cache_and_nocache_is_none(service, base, ctx):
    first, _ = build(service, ctx, DOCKERFILE)
    second, events = build(service, ctx, DOCKERFILE)
    assert second == first and stream(events).count(" ---> Using cache\n") == 10
    (ctx / "hello.txt").write_text("changed")
    third, events = build(service, ctx, DOCKERFILE)
    assert third != first and stream(events).count(" ---> Using cache\n") == 3
    _, events = build(service, ctx, DOCKERFILE, nocache=True)
    assert " ---> Using cache" not in stream(events)


def test_cache_from_limits_the_cache_to_those_images(service, base, ctx):
    dockerfile = "FROM base:1\nENV FOO=bar\nCOPY hello.txt /x\n"
    first, _ = build(service, ctx, dockerfile, tags=["build1"])
    _, events = build(service, ctx, dockerfile, cache_from=["build1"])
    assert stream(events).count("Using cache") == 2
    _, events = build(service, ctx, dockerfile, cache_from=["nosuchtag"])
    assert stream(events).count("Using cache") == 0


def test_stages_target_copy_from_and_build_args(service, base, ctx, tmp_path):
    dockerfile = """\
ARG BASE=base:1
FROM $BASE AS first
COPY hello.txt /made/there
FROM scratch
COPY --from=first /made/there /copied
ONBUILD RUN echo later
"""
    image_id, events = build(service, ctx, dockerfile, target="first")
    assert "Step 3/3 : COPY hello.txt /made/there" in stream(events)
    assert "made/there" in tree(service, image_id, tmp_path / "a")
    image_id, _ = build(service, ctx, dockerfile)
    assert set(tree(service, image_id, tmp_path / "b")) == {"copied"}
    assert config(service, image_id)["OnBuild"] == ["RUN echo later"]
    with pytest.raises(HyperError, match="failed to reach build target nosuch"):
        build(service, ctx, dockerfile, target="nosuch")


def test_scratch_with_buildargs_and_labels(service, ctx):
    image_id, events = build(
        service, ctx, "FROM scratch\nARG test\nUSER $test\n",
        buildargs={"test": "OK", "unused": "1"}, labels={"a": "b"},
    )  # fmt: skip
    cfg = config(service, image_id)
    assert cfg["User"] == "OK" and cfg["Labels"] == {"a": "b"}
    assert "[Warning] One or more build-args [unused] were not consumed\n" in stream(events)


def test_quiet_prints_only_the_id(service, base, ctx):
    image_id, events = build(service, ctx, "FROM base:1\nENV A=1\n", quiet=True)
    assert stream(events) == f"{image_id}\n"


def test_errors(service, base, ctx):
    with pytest.raises(BuildError, match="the builder does not pull"):
        build(service, ctx, "FROM nosuch:image\n")
    with pytest.raises(NotFound, match="file not found in build context"):
        build(service, ctx, "FROM base:1\nCOPY missing.txt /\n")
    with pytest.raises(BuildError, match="No image was generated"):
        build(service, ctx, "FROM scratch\n")
    with pytest.raises(HyperError, match="destination must be a directory"):
        build(service, ctx, "FROM base:1\nCOPY hello.txt dir /nodir\n")


def test_history_lines_of_build_steps(service, base, ctx):
    image_id, _ = build(service, ctx, "FROM base:1\nENV A=1\nCOPY hello.txt /h\n")
    hist = load_json(service.store.read(service.resolve(image_id).config_digest), "c")["history"]
    assert hist[-2]["created_by"] == "/bin/sh -c #(nop)  ENV A=1" and hist[-2]["empty_layer"]
    assert hist[-1]["created_by"].startswith("/bin/sh -c #(nop) COPY file:")


@pytest.mark.parametrize("compress", ["xz", "zst", "plain"])
def test_add_unpacks_archives_of_any_compression(service, base, ctx, tmp_path, compress):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("inner/file")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
    raw = buf.getvalue()
    data = {"xz": lzma.compress, "zst": zstandard.ZstdCompressor().compress}.get(
        compress, lambda b: b
    )(raw)
    (ctx / f"a.{compress}").write_bytes(data)
    image_id, _ = build(service, ctx, f"FROM base:1\nADD a.{compress} /x/\nCOPY a.{compress} /y\n")
    t = tree(service, image_id, tmp_path / "t")
    assert "x/inner/file" in t and "y" in t  # COPY never unpacks


def test_build_prune_forgets_the_cache_and_the_unnamed_step_images(service, base, ctx):
    first, _ = build(service, ctx, "FROM base:1\nENV A=1\nENV B=2\n")
    middle = service.index.parent(first)
    kept, _ = build(service, ctx, "FROM base:1\nENV C=3\n", tags=["keep:1"])
    removed, _freed = prune(service)
    assert set(removed) == {first, middle}
    assert service.index.get(kept) is not None and service.index.get(base.id) is not None
    _, events = build(service, ctx, "FROM base:1\nENV C=3\n")
    assert "Using cache" not in stream(events)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"buildargs": "{not json"}, "buildargs must be JSON"),
        ({"buildargs": '{"a": 1}'}, "must map strings to strings"),
        ({"cachefrom": '{"a": "b"}'}, "cachefrom must be a list"),
        ({"t": "Bad:Tag:x"}, "invalid reference format"),
        ({"remote": "https://github.com/x/y.git"}, "remote build contexts are not supported"),
        ({"platform": "foobar"}, "invalid platform"),
        ({"platform": "linux/s390x"}, "this daemon builds for"),
        ({"memory": "1000"}, "minimum memory limit"),
        ({"extrahosts": "nocolon"}, "extrahosts: invalid entry"),
    ],
)
def test_build_query_errors(query, message):
    with pytest.raises(HyperError, match=message):
        decode(MultiDict(query))


def test_build_query_decoding():
    q = MultiDict(
        [("t", "a:1"), ("t", "b"), ("buildargs", '{"X": "1", "Y": null}'), ("q", "1"),
         ("extrahosts", "h1:1.2.3.4,h2:5.6.7.8"), ("rm", "0"), ("networkmode", "none")]
    )  # fmt: skip
    options, run = decode(q)
    assert options.tags == ["a:1", "b"] and options.buildargs == {"X": "1", "Y": None}
    assert options.quiet and not run.rm and run.network_mode == "none"
    assert run.extra_hosts == ["h1:1.2.3.4", "h2:5.6.7.8"]
