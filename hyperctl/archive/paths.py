"""Docker's rules for where a copied resource lands (moby's archive ``CopyInfo`` and
``PrepareArchiveCopy``): a directory into an existing directory, or as a new name; a file
onto a file, into a directory, or as a new name; ``/.`` for a directory's contents."""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass

from hyperapi.errors import HyperError

MAX_SYMLINKS = 10


class CopyError(HyperError):
    """A copy that cannot be done as asked (Docker's archive errors, local file errors)."""


def os_error(err: OSError, op: str = "lstat") -> CopyError:
    """A local file error in Go's words: ``lstat /x: no such file or directory``."""
    why = (err.strerror or str(err)).lower()
    return CopyError(f"{op} {err.filename}: {why}" if err.filename else why)


def clean(path: str) -> str:
    """Go's ``filepath.Clean``."""
    if not path:
        return "."
    out = posixpath.normpath(path)
    return "/" + out.lstrip("/") if out.startswith("//") else out


def base(path: str) -> str:
    """Go's ``filepath.Base``: the last element, ``.`` for "", ``/`` for the root."""
    stripped = path.rstrip("/")
    if not path:
        return "."
    if not stripped:
        return "/"
    return stripped.rsplit("/", 1)[-1]


def specifies_current_dir(path: str) -> bool:
    """The path's last element is ``.``."""
    return base(path) == "."


def asserts_directory(path: str) -> bool:
    """The path ends in ``/`` or ``/.``: it must be a directory."""
    return path.endswith("/") or specifies_current_dir(path)


def split_dir_entry(path: str) -> tuple[str, str]:
    """(directory, entry) of a cleaned path, keeping a trailing ``.``."""
    cleaned = clean(path)
    if specifies_current_dir(path):
        cleaned = cleaned.rstrip("/") + "/."
    return clean(posixpath.dirname(cleaned) or "."), base(cleaned)


def preserve_trailing(cleaned: str, original: str) -> str:
    """``cleaned`` with the ``/.`` or ``/`` that ``original`` ended with."""
    if not specifies_current_dir(cleaned) and specifies_current_dir(original):
        cleaned = cleaned.rstrip("/") + "/."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned


def resolve_local(path: str) -> str:
    """A local path made absolute, its trailing ``/`` or ``/.`` kept."""
    return preserve_trailing(os.path.abspath(path), path)


def rebase_name(path: str, resolved: str) -> tuple[str, str]:
    """(resolved path keeping ``path``'s trailing ``/``/``/.``, the name the archive's entries
    must get when a symlink's target has another name than the link) — Docker's
    ``GetRebaseName``."""
    if specifies_current_dir(path) and not specifies_current_dir(resolved):
        resolved = resolved.rstrip("/") + "/."
    if path.endswith("/") and not resolved.endswith("/"):
        resolved += "/"
    return resolved, (base(path) if base(path) != base(resolved) else "")


@dataclass
class CopyInfo:
    """The source or destination of a copy."""

    path: str
    exists: bool = False
    is_dir: bool = False
    rebase_name: str = ""


def source_info(path: str, follow_link: bool) -> CopyInfo:
    """A local copy source: symlinks before its last element resolved (all with
    ``follow_link``); it must exist."""
    try:
        if follow_link:
            resolved, rebase = rebase_name(path, os.path.realpath(path, strict=True))
        else:
            parent, leaf = os.path.split(path)
            resolved = os.path.join(os.path.realpath(parent or ".", strict=True), leaf)
            rebase = base(path) if path.endswith("/") and base(path) != base(resolved) else ""
        st = os.lstat(resolved)
    except OSError as e:
        raise os_error(e) from None
    return CopyInfo(resolved, True, stat.S_ISDIR(st.st_mode), rebase)


def destination_info(path: str) -> CopyInfo:
    """A local copy destination: symlinks followed; when missing, its parent must be a
    directory."""
    original = path
    for _ in range(MAX_SYMLINKS + 1):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return _missing_destination(path)
        except OSError as e:
            raise os_error(e) from None
        if not stat.S_ISLNK(st.st_mode):
            return CopyInfo(path, True, stat.S_ISDIR(st.st_mode))
        target = os.readlink(path)
        path = (
            target if target.startswith("/") else posixpath.join(split_dir_entry(path)[0], target)
        )
        path = clean(path)
    raise CopyError(f"too many symlinks in {original}")


def _missing_destination(path: str) -> CopyInfo:
    parent = split_dir_entry(path)[0]
    try:
        st = os.stat(parent)
    except OSError as e:
        raise os_error(e, "stat") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CopyError("not a directory")
    return CopyInfo(path)


def source_base(path: str) -> str:
    """The name the archive of ``path`` has its entries under (``.`` for the root, as the
    guest names them)."""
    name = split_dir_entry(path)[1]
    return "." if name == "/" else name


def prepare(src: CopyInfo, dst: CopyInfo) -> tuple[str, str | None]:
    """Where to extract the source's archive (a directory), and the name its top entry
    (``source_base``) must get there, None when it keeps its own — Docker's
    ``PrepareArchiveCopy``, with the source's ``rebase_name`` applied first."""
    dst_dir, dst_base = split_dir_entry(dst.path)
    own = source_base(src.path)
    if dst.exists and dst.is_dir:
        dst_dir, final = dst.path, src.rebase_name or own
    elif dst.exists and src.is_dir:
        raise CopyError("cannot copy directory")
    elif not dst.exists and not src.is_dir and asserts_directory(dst.path):
        raise CopyError("no such directory")
    else:
        final = dst_base
    return dst_dir, (final if final != own else None)


def rebase(name: str, old: str, new: str | None) -> str:
    """An archive entry's name with its first element ``old`` renamed ``new``."""
    if new is None:
        return name
    if name == old or name == old + "/":
        return new
    if name.startswith(old + "/"):
        return new + name[len(old) :]
    return name
