"""Docker's merge of an image's config under a container's (create.with_image_defaults) and
the environment a process gets from it."""

from __future__ import annotations

from hyperd.containers.create import with_image_defaults
from hyperd.containers.health import command
from hyperd.containers.process import merge_env
from hyperd.containers.spec import ContainerConfig, Healthcheck

CID = "c" * 64


def test_env_keeps_the_users_entries_as_given_then_the_images():
    cfg = ContainerConfig(image="x", env=["Foo", "Other=one", "Blank=", "PATH=/mine"])
    icfg = {"Env": ["PATH=/usr/bin", "LANG=C", "Foo=image"]}
    env = with_image_defaults(cfg, icfg, CID).env
    assert env == ["Foo", "Other=one", "Blank=", "PATH=/mine", "LANG=C"]
    # in the process, KEY alone unsets KEY
    assert merge_env(["Foo=host"], env) == {
        "Other": "one",
        "Blank": "",
        "PATH": "/mine",
        "LANG": "C",
    }


def test_no_user_env_takes_the_images():
    cfg = ContainerConfig(image="x")
    assert with_image_defaults(cfg, {"Env": ["A=1"]}, CID).env == ["A=1"]


def test_healthcheck_fields_left_out_come_from_the_image():
    image = {
        "Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 5, "Retries": 2}
    }
    mine = Healthcheck(test=[], interval=7, timeout=3)
    hc = with_image_defaults(ContainerConfig(image="x", healthcheck=mine), image, CID).healthcheck
    assert hc == Healthcheck(["CMD-SHELL", "curl -f localhost"], interval=7, timeout=3, retries=2)
    hc = with_image_defaults(ContainerConfig(image="x"), image, CID).healthcheck
    assert hc.test == ["CMD-SHELL", "curl -f localhost"] and hc.interval == 5


def test_probe_command_lines():
    assert command(Healthcheck(["CMD-SHELL", "exit 1"])) == ["/bin/sh", "-c", "exit 1"]
    assert command(Healthcheck(["CMD", "true", "x"])) == ["true", "x"]
    assert command(Healthcheck(["NONE"])) is None
    assert command(Healthcheck([])) is None and command(None) is None
    none = with_image_defaults(
        ContainerConfig(image="x", healthcheck=Healthcheck(["NONE"])),
        {"Healthcheck": {"Test": ["CMD", "true"]}},
        CID,
    )
    assert command(none.healthcheck) is None
