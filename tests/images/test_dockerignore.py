""".dockerignore matching and the build context that applies it."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from hyperd.errors import InvalidArgument, NotFound
from hyperd.images.build.context import BuildContext, unpack
from hyperd.images.build.ignore import Matcher, read_patterns

# docker-py's test_build_with_dockerignore, line for line
DOCKERIGNORE = "\n".join(
    [
        "ignored",
        "Dockerfile",
        ".dockerignore",
        " ignored-with-spaces ",
        "!ignored/subdir/excepted-file",
        "! ignored/subdir/excepted-with-spaces  ",
        "#*",
    ]
)


def test_patterns_are_cleaned_as_docker_cleans_them():
    assert read_patterns("  a/../b/  \n# c\n\n!  /d\n/e") == ["b", "!d", "e"]


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("not-ignored", False),
        ("#file.txt", False),
        ("ignored-with-spaces", True),
        ("ignored", True),
        ("ignored/subdir/file", True),
        ("ignored/subdir/excepted-file", False),
        ("ignored/subdir/excepted-with-spaces", False),
        ("Dockerfile", True),
    ],
)
def test_docker_py_dockerignore(path, excluded):
    assert Matcher(read_patterns(DOCKERIGNORE)).excluded(path) is excluded


@pytest.mark.parametrize(
    ("pattern", "path", "excluded"),
    [
        ("**/*.go", "a/b/c.go", True),
        ("**/*.go", "x.go", True),
        ("*.go", "a/x.go", False),  # * never crosses a /
        ("dir/*.txt", "dir/sub/x.txt", False),
        ("dir", "dir/sub/x.txt", True),  # a parent directory matches
        ("a?c", "abc", True),
        ("a[0-9]", "a5", True),
        ("a\\*", "a*", True),
        ("docs/**", "docs/x/y", True),
    ],
)
def test_pattern_syntax(pattern, path, excluded):
    assert Matcher(read_patterns(pattern)).excluded(path) is excluded


def test_last_matching_pattern_wins():
    m = Matcher(read_patterns("*.md\n!README.md\nREADME.md"))
    assert m.excluded("README.md")
    m = Matcher(read_patterns("*.md\n!README.md"))
    assert not m.excluded("README.md") and m.excluded("CHANGES.md")


def _context_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o640
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _context(tmp_path: Path, files: dict[str, bytes]) -> BuildContext:
    (tmp_path / "ctx.tar.gz").write_bytes(_context_tar(files))
    root = tmp_path / "ctx"
    root.mkdir()
    unpack(tmp_path / "ctx.tar.gz", root)
    return BuildContext(root)


def test_context_applies_dockerignore_after_reading_the_dockerfile(tmp_path):
    files = {
        "Dockerfile": b"FROM busybox\nADD . /test\n",
        ".dockerignore": DOCKERIGNORE.encode(),
        "not-ignored": b"1",
        "#file.txt": b"2",
        "ignored-with-spaces": b"3",
        "ignored/subdir/file": b"4",
        "ignored/subdir/excepted-file": b"5",
        "ignored/subdir/excepted-with-spaces": b"6",
    }
    ctx = _context(tmp_path, files)
    rel, raw = ctx.dockerfile("")
    assert (rel, raw) == ("Dockerfile", files["Dockerfile"])
    ctx.apply_dockerignore(rel)
    left = sorted(str(p.relative_to(ctx.root)) for p in ctx.root.rglob("*") if p.is_file())
    assert left == [
        "#file.txt",
        "ignored/subdir/excepted-file",
        "ignored/subdir/excepted-with-spaces",
        "not-ignored",
    ]
    assert oct((ctx.root / "not-ignored").stat().st_mode & 0o777) == "0o640"


def test_dockerfile_stays_unless_dockerignore_names_it(tmp_path):
    ctx = _context(tmp_path, {"build/Custom": b"FROM x\n", ".dockerignore": b"other\n"})
    rel, _ = ctx.dockerfile("build/Custom")
    ctx.apply_dockerignore(rel)
    assert (ctx.root / "build/Custom").exists() and (ctx.root / ".dockerignore").exists()


def test_missing_dockerfile_and_paths_outside_the_context(tmp_path):
    ctx = _context(tmp_path, {"file": b"x"})
    with pytest.raises(NotFound, match="Cannot locate specified Dockerfile: Dockerfile"):
        ctx.dockerfile("")
    with pytest.raises(InvalidArgument, match="outside the build context"):
        ctx.dockerfile("../Dockerfile")
    with pytest.raises(InvalidArgument, match="outside the build context"):
        ctx.select("../etc/passwd")
    with pytest.raises(NotFound, match="file not found in build context"):
        ctx.select("nosuch*")


def test_not_a_tar_is_a_clear_error(tmp_path):
    (tmp_path / "junk").write_bytes(b"this is not a tar archive at all" * 40)
    (tmp_path / "ctx").mkdir()
    with pytest.raises(InvalidArgument, match="not a \\(compressed\\) tar archive|bad build"):
        unpack(tmp_path / "junk", tmp_path / "ctx")
