"""Which of a sandbox's disks a pool VM already has, and which serial each one ends up on.

A pool VM boots with disks (``Held``) so that a sandbox taking it needs no hot-plug:
- a blank disk (``DiskSpec.blank``): made as a sandbox's never-used writable disk is made;
  it stands in for a requested blank disk of the same serial by moving the file (an atomic
  rename on one filesystem) to the requested path, so that path names the inode QEMU has
  open;
- shared read-only disks (``DiskSpec.shared``, an image's root disk): the file itself,
  reused by a request for the same file.

Any other requested disk is hot-plugged; when its serial is taken by a held disk it
cannot use (a root disk of another image, a blank disk for a layer that is not blank), it
gets a free serial of the same stem (``image-1``), and ``Plan.serials`` says so: the guest
mounts what it asked for by the serial it got. Held disks nobody uses stay where they are
(unplugging under TCG costs seconds).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from hyperd.vm.designer import MAX_SERIAL, DiskSpec

FileKey = tuple[int, int]  # (st_dev, st_ino)


def file_key(path: str) -> FileKey | None:
    """The identity of the file at ``path`` (None if there is none)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


@dataclass(frozen=True)
class Held:
    """A disk a pool VM booted with; ``key``: the identity its file had (shared disks)."""

    spec: DiskSpec
    key: FileKey | None = None

    def intact(self) -> bool:
        """Is a shared disk's file still the one the VM opened (not removed or replaced)?"""
        return not self.spec.shared or file_key(self.spec.path) == self.key


@dataclass
class Plan:
    """What taking a pool VM for a set of disks does."""

    moves: list[tuple[str, str]] = field(default_factory=list)  # held blank file -> request
    plugs: list[DiskSpec] = field(default_factory=list)  # hot-plugged, on their own serial
    serials: dict[str, str] = field(default_factory=dict)  # requested serial -> serial got


def plan(
    requested: Iterable[DiskSpec],
    held: Iterable[Held],
    can_move: Callable[[str, str], bool] = lambda _src, _dst: True,
) -> Plan:
    """Match ``requested`` disks with the ``held`` ones; hot-plug the rest.

    ``can_move(src, dst)``: whether a held blank file can be renamed onto a requested path
    (same filesystem)."""
    free = list(held)
    taken = {h.spec.serial for h in free}
    out = Plan()
    for req in requested:
        match = next((h for h in free if _fits(h.spec, req, can_move)), None)
        if match is not None:
            free.remove(match)
            if match.spec.blank:
                out.moves.append((match.spec.path, req.path))
            out.serials[req.serial] = match.spec.serial
            continue
        serial = free_serial(req.serial, taken)
        taken.add(serial)
        out.plugs.append(DiskSpec(req.path, serial, req.readonly, req.blank, req.shared))
        out.serials[req.serial] = serial
    return out


def _fits(held: DiskSpec, req: DiskSpec, can_move: Callable[[str, str], bool]) -> bool:
    if held.blank:
        return req.blank and held.serial == req.serial and can_move(held.path, req.path)
    return held.shared and req.readonly and held.path == req.path


def free_serial(serial: str, taken: Collection[str]) -> str:
    """``serial`` if no disk has it, else the first free ``serial-N`` (within MAX_SERIAL)."""
    if serial not in taken:
        return serial
    n = 1
    while True:
        suffix = f"-{n}"
        name = serial.encode()[: MAX_SERIAL - len(suffix)].decode(errors="ignore") + suffix
        if name not in taken:
            return name
        n += 1


def live_serials(requested: Iterable[DiskSpec], live: Iterable[tuple[str, str]]) -> dict[str, str]:
    """After a daemon restart: the serial each requested disk got, from the running VM's
    disks (``(source path, serial)``). A disk plugged for the sandbox is found by its path;
    one that is not there by path took a held blank disk's place, on its own serial."""
    by_path = {path: serial for path, serial in live}
    return {req.serial: by_path.get(req.path, req.serial) for req in requested}


def same_filesystem(src: str, dst: str) -> bool:
    """Can ``src`` be renamed onto ``dst`` (both directories on one filesystem)?"""
    try:
        return os.stat(os.path.dirname(src)).st_dev == os.stat(os.path.dirname(dst)).st_dev
    except OSError:
        return False
