"""``docker export``: an image's layers plus a container's changes, flattened into one tar."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from hyperd.images.layer import Changes
from hyperd.images.manifest import load_json
from hyperd.images.rootfs import LayerApplier, flatten
from hyperd.images.store import ImageRecord

if TYPE_CHECKING:
    from hyperd.images.service import ImageService


def tar_tree(root: Path, out: BinaryIO) -> None:
    """Write the directory ``root`` as a tar (names relative to it, hard links kept)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                tar.add(path, arcname=os.path.relpath(path, root), recursive=False)


def export(svc: ImageService, rec: ImageRecord | None, changes: Changes, out_path: Path) -> None:
    """Write the flattened filesystem of ``rec`` with ``changes`` on top to ``out_path``."""
    work = Path(tempfile.mkdtemp(dir=svc.store.ingest_dir, prefix="export-"))
    try:
        tree = work / "tree"
        tree.mkdir(mode=0o755)
        if rec is not None:
            config = load_json(svc.store.read(rec.config_digest), "image config")
            diff_ids = (config.get("rootfs") or {}).get("diff_ids")
            flatten([svc.store.path(d.digest) for d in rec.layers], tree, diff_ids)
        layer = work / "changes.tar"
        with open(layer, "wb") as f:
            changes.write_tar(f)
        applier = LayerApplier(tree)
        applier.apply_file(layer)
        applier.finish()
        with open(out_path, "wb") as f:
            tar_tree(tree, f)
    finally:
        shutil.rmtree(work, ignore_errors=True)
