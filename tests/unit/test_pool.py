"""The VM pool's configuration (``factory``), the key of the guest files it booted, and the
root of its warm-up container."""

from __future__ import annotations

import json
import os

import pytest

from hyperd.errors import HyperError
from hyperd.sandbox.disks import Held
from hyperd.sandbox.pool import Factory, assets_key, parse_factory
from hyperd.sandbox.template import template_key
from hyperd.sandbox.warmup import root_mounts
from hyperd.vm import designer


@pytest.mark.parametrize(
    ("value", "factory"),
    [
        ("none", Factory()),
        ("", Factory()),
        ("cache:0", Factory()),
        ("cache:1", Factory(1)),
        (" cache:8 ", Factory(8)),
        ("template", Factory(0, True)),
        ("template, cache:2", Factory(2, True)),
        ("cache:3,template", Factory(3, True)),
    ],
)
def test_factory_values(value, factory):
    """ "none" or empty: no pool; "cache:N": N VMs kept booted; "template": VMs start as
    clones of a template; both may be given, comma-separated."""
    assert parse_factory(value) == factory


@pytest.mark.parametrize(
    "value",
    ["cache", "cache:", "cache:-1", "cache:x", "tmpl", "cache:65", "template,template", "cache:1,"],
)
def test_bad_factory_values_name_the_setting(value):
    """A wrong value stops the daemon with a message naming the key and the forms it takes."""
    with pytest.raises(HyperError, match='factory = .*expected "none", "cache:N"'):
        parse_factory(value)


def test_assets_key_changes_when_a_file_is_replaced(tmp_path):
    """A kernel or initrd rewritten in place (or replaced) gives another key, so pool VMs
    booted from the old one are not handed out; a missing file is a key of its own."""
    kernel, initrd = tmp_path / "vmlinux", tmp_path / "initrd.img"
    kernel.write_bytes(b"k1")
    initrd.write_bytes(b"i1")
    first = assets_key((str(kernel), str(initrd)))
    assert assets_key((str(kernel), str(initrd))) == first
    new = tmp_path / "vmlinux.new"
    new.write_bytes(b"k2!")
    os.replace(new, kernel)
    assert assets_key((str(kernel), str(initrd))) != first
    assert assets_key((str(tmp_path / "gone"),)) == (None,)


def test_template_key_changes_with_the_kernel_arguments(tmp_path, monkeypatch):
    """A template's guest booted with the kernel arguments of its day: other arguments (a
    hyper upgrade) make it stale, as another kernel does. The key survives JSON as is."""
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"k")
    key = template_key((str(kernel),), 1, 256 << 20, "tcg")
    assert json.loads(json.dumps(key)) == key == template_key((str(kernel),), 1, 256 << 20, "tcg")
    monkeypatch.setattr(designer, "KERNEL_ARGS", designer.KERNEL_ARGS + " tsc=reliable")
    assert template_key((str(kernel),), 1, 256 << 20, "tcg") != key


def test_warm_up_root_is_every_held_disk_read_only():
    """The warm-up container's root is the image's root disk (the image's filesystem) and
    the blank layer (ext4), both read-only lowers: the mount writes nothing, so the layer
    stays blank for the container that takes the VM."""
    held = [
        Held(designer.DiskSpec("/r/img.erofs", "image", True, shared=True)),
        Held(designer.DiskSpec("/p/rw.ext4", "rw", blank=True)),
    ]
    mounts = [m.to_json() for m in root_mounts(held, "erofs")]
    assert mounts == [
        {"type": "block", "source": "image", "target": "/", "readonly": True,
         "fstype": "erofs", "layer": "lower"},
        {"type": "block", "source": "rw", "target": "/", "readonly": True,
         "fstype": "ext4", "layer": "lower"},
    ]  # fmt: skip
    assert root_mounts([], "erofs") == []  # nothing held: no warm-up container
