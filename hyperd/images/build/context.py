"""The build context: the uploaded tar unpacked safely, .dockerignore applied, the
Dockerfile read, and the sources of COPY/ADD selected and digested (for the cache)."""

from __future__ import annotations

import glob
import hashlib
import os
import posixpath
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from hyperd.errors import InvalidArgument, NotFound
from hyperd.images.errors import ImageError
from hyperd.images.importer import decompressed
from hyperd.images.rootfs import LayerApplier

from .ignore import Matcher, read_patterns

DOCKERIGNORE = ".dockerignore"
DEFAULT_DOCKERFILE = "Dockerfile"
MAX_DOCKERFILE = 4 << 20


def unpack(tar_path: Path, dest: Path) -> None:
    """Unpack a (compressed) tar into ``dest``; entries cannot land outside it."""
    applier = LayerApplier(dest)
    try:
        with open(tar_path, "rb", buffering=1 << 20) as raw:
            if not raw.peek(1):
                return  # an empty body: an empty context
            applier.apply(decompressed(raw))
    except (OSError, EOFError) as e:
        raise InvalidArgument(f"the build context is not a (compressed) tar archive: {e}") from None
    except ImageError as e:
        raise InvalidArgument(f"bad build context: {e.message}") from None
    applier.finish()


def inside(path: str, what: str) -> str:
    """``path`` relative to the context root ("." for the root); refused when it climbs
    out of the context (an absolute path is taken from the context root, as Docker does)."""
    norm = posixpath.normpath(path.replace("\\", "/")) if path else "."
    if norm == ".." or norm.startswith("../"):
        raise InvalidArgument(f"Forbidden path outside the build context: {path} ({what})")
    return norm.lstrip("/") or "."


@dataclass
class Source:
    """One file or directory of the context selected by a COPY/ADD source."""

    path: Path  # on the host
    rel: str  # relative to the context root


class BuildContext:
    """An unpacked build context under ``root``."""

    def __init__(self, root: Path):
        self.root = root

    def dockerfile(self, name: str) -> tuple[str, bytes]:
        """The Dockerfile's path in the context and its bytes (read before excludes)."""
        rel = inside(name or DEFAULT_DOCKERFILE, "the Dockerfile")
        path = self.root / rel
        if not name and not path.is_file() and (self.root / "dockerfile").is_file():
            rel, path = "dockerfile", self.root / "dockerfile"
        if not path.is_file():
            raise NotFound(f"Cannot locate specified Dockerfile: {name or DEFAULT_DOCKERFILE}")
        if path.stat().st_size > MAX_DOCKERFILE:
            raise InvalidArgument("the Dockerfile is larger than 4 MiB")
        return rel, path.read_bytes()

    def apply_dockerignore(self, dockerfile: str) -> None:
        """Remove what .dockerignore excludes; then, as Docker, the .dockerignore and the
        Dockerfile themselves when they match it."""
        ignore = self.root / DOCKERIGNORE
        if not ignore.is_file():
            return
        matcher = Matcher(read_patterns(ignore.read_text(errors="replace")))
        if matcher.empty:
            return
        self._prune(self.root, "", matcher)
        for rel in (DOCKERIGNORE, dockerfile):
            if matcher.excluded(rel) and (self.root / rel).is_file():
                (self.root / rel).unlink()

    def _prune(self, directory: Path, rel: str, matcher: Matcher) -> bool:
        """Drop excluded entries below ``directory``; True if something is left in it."""
        left = False
        for entry in list(os.scandir(directory)):
            child = f"{rel}/{entry.name}" if rel else entry.name
            if entry.name == DOCKERIGNORE and not rel:
                left = True
                continue
            if entry.is_dir(follow_symlinks=False):
                kept = self._prune(Path(entry.path), child, matcher)
                if not kept and matcher.excluded(child):
                    shutil.rmtree(entry.path)
                    continue
            elif matcher.excluded(child):
                os.unlink(entry.path)
                continue
            left = True
        return left

    def select(self, pattern: str) -> list[Source]:
        """The context entries a COPY/ADD source names (wildcards allowed)."""
        rel = inside(pattern, "COPY/ADD source")
        if rel == ".":
            return [Source(self.root, "")]
        if any(c in rel for c in "*?["):
            found = sorted(glob.glob(rel, root_dir=self.root, include_hidden=True))
        else:
            found = [rel] if os.path.lexists(self.root / rel) else []
        if not found:
            raise NotFound(
                f"COPY failed: file not found in build context or excluded by .dockerignore: "
                f"stat {rel}: file does not exist"
            )
        return [Source(self.root / f, f) for f in found]


def digest_sources(sources: list[Source]) -> str:
    """A digest of what the sources hold (names, types, modes, contents; not mtimes)."""
    h = hashlib.sha256()
    for src in sources:
        for path, rel in walk(src.path, src.rel):
            st = os.lstat(path)
            h.update(f"{rel}\0{st.st_mode:o}\0".encode())
            if stat.S_ISREG(st.st_mode):
                h.update(file_digest(path).encode())
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
    return "sha256:" + h.hexdigest()


def file_digest(path: Path | str) -> str:
    """sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def walk(path: Path, rel: str):
    """(host path, relative name) of ``path`` and everything below it, sorted."""
    yield path, rel
    if path.is_dir() and not path.is_symlink():
        for name in sorted(os.listdir(path)):
            yield from walk(path / name, f"{rel}/{name}" if rel else name)
