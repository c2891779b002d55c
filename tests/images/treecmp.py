"""Describe a directory tree for comparisons (types, modes, owners, contents, links)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import subprocess
from pathlib import Path

IGNORE: set[str] = set()


def describe(root: Path, mtimes: bool = True, dir_mtimes: bool = False) -> dict[str, tuple]:
    """rel path -> (type, mode, uid, gid, content sha / link target / rdev, mtime)."""
    out: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(n for n in dirnames if not (dirpath == str(root) and n in IGNORE))
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(kind):
                with open(p, "rb") as f:
                    extra = hashlib.sha256(f.read()).hexdigest()[:16]
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif stat.S_ISLNK(kind):
                extra = os.readlink(p)
            elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                extra = None
            mt = None
            if mtimes and (dir_mtimes or not stat.S_ISDIR(kind)):
                mt = int(st.st_mtime)
            out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, extra, mt)
    out["#hardlinks"] = tuple(sorted(tuple(sorted(v)) for v in inodes.values()))
    return out


@contextlib.contextmanager
def mounted(image: Path, fstype: str, where: Path):
    """Loop-mount a filesystem image read-only (root only)."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-o", "ro,loop", "-t", fstype, str(image), str(where)],
        check=True,
        capture_output=True,
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
