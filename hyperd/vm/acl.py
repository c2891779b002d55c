"""POSIX access ACLs of files, read and written as the kernel's xattr (no libacl needed).

A VM's QEMU reaches a disk through an ACL entry naming its uid (``grant``), so one disk can
serve several VMs at once (an image's root disk, a shared volume) while every other uid is
kept out: granting also takes away the file's "other" permissions. ``revoke`` drops one
uid's entry; once no named entry is left the file is back to plain mode bits.

Format (linux/posix_acl_xattr.h): a little-endian u32 version (2), then entries of u16 tag,
u16 permissions, u32 id, sorted by tag and, for named users, by id.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from pathlib import Path

XATTR = "system.posix_acl_access"
VERSION = 2
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEFINED_ID = 0xFFFFFFFF
READ, WRITE = 4, 2

Entries = dict[tuple[int, int], int]  # (tag, id) -> permission bits


def _decode(data: bytes) -> Entries:
    (version,) = _HEADER.unpack_from(data)
    if version != VERSION or (len(data) - _HEADER.size) % _ENTRY.size:
        raise ValueError(f"not a POSIX ACL (version {version}, {len(data)} bytes)")
    body = data[_HEADER.size :]
    return {(tag, uid): perm for tag, perm, uid in _ENTRY.iter_unpack(body)}


def _encode(entries: Entries) -> bytes:
    items = sorted(entries.items())
    return _HEADER.pack(VERSION) + b"".join(_ENTRY.pack(t, p, i) for (t, i), p in items)


def _read(path: str | Path) -> Entries:
    """The file's ACL, or the three entries its mode bits amount to when it has none."""
    try:
        return _decode(os.getxattr(path, XATTR, follow_symlinks=False))
    except OSError as exc:
        if exc.errno != errno.ENODATA:
            raise
    mode = stat.S_IMODE(os.lstat(path).st_mode)
    return {
        (USER_OBJ, UNDEFINED_ID): (mode >> 6) & 7,
        (GROUP_OBJ, UNDEFINED_ID): (mode >> 3) & 7,
        (OTHER, UNDEFINED_ID): mode & 7,
    }


def _write(path: str | Path, entries: Entries) -> None:
    entries.pop((MASK, UNDEFINED_ID), None)
    named = [p for (tag, _), p in entries.items() if tag in (USER, GROUP)]
    if named:  # the mask bounds named entries and the owning group: their union
        mask = entries[(GROUP_OBJ, UNDEFINED_ID)]
        for perm in named:
            mask |= perm
        entries[(MASK, UNDEFINED_ID)] = mask
    # An ACL of the three base entries alone: the kernel keeps it as mode bits.
    os.setxattr(path, XATTR, _encode(entries), follow_symlinks=False)


def grant(path: str | Path, uid: int, write: bool) -> None:
    """Let ``uid`` read (and write) the file; no one but its owner, group and the uids
    granted keeps access (the "other" bits are cleared)."""
    entries = _read(path)
    entries[(USER, uid)] = READ | (WRITE if write else 0)
    entries[(OTHER, UNDEFINED_ID)] = 0
    _write(path, entries)


def revoke(path: str | Path, uid: int) -> None:
    """Take ``uid``'s entry off the file (nothing when it has none or the file is gone)."""
    try:
        entries = _read(path)
    except FileNotFoundError:
        return
    if entries.pop((USER, uid), None) is not None:
        _write(path, entries)


def named_users(path: str | Path) -> dict[int, int]:
    """uid -> permission bits (READ, WRITE) of the file's named-user entries."""
    return {uid: perm for (tag, uid), perm in _read(path).items() if tag == USER}


def supported(directory: str | Path) -> bool:
    """Do files in ``directory`` take POSIX ACLs (a probe file, removed again)?"""
    probe = Path(directory) / f".acl-probe-{os.getpid()}"
    try:
        probe.touch(mode=0o600)
        grant(probe, 65534, write=False)  # nobody, on a file about to go
        return True
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            return False
        raise
    finally:
        probe.unlink(missing_ok=True)
