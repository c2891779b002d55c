"""Protocol version 3: what a process may do (PROCESS) and privileged containers."""

import pytest

from hyperd.agent import protocol as p


def test_default_security_adds_nothing_to_the_process():
    """Docker's defaults are the agent's: a default process carries no security field."""
    proc = p.Process("init", ["true"], stdio=1)
    assert not {"capAdd", "capDrop", "privileged", "noNewPrivileges", "seccomp"} & set(
        proc.to_json()
    )


def test_security_fields_on_the_wire():
    sec = p.Security(["NET_ADMIN"], ["ALL"], no_new_privileges=True, seccomp=False)
    out = p.Process("e1", ["sh"], stdio=1, security=sec).to_json()
    assert out["capAdd"] == ["NET_ADMIN"]
    assert out["capDrop"] == ["ALL"]
    assert out["noNewPrivileges"] is True
    assert out["seccomp"] is False
    assert "privileged" not in out
    assert p.Process("e2", ["sh"], 1, security=p.Security(privileged=True)).to_json()["privileged"]


def test_newcontainer_privileged_only_when_asked():
    mounts = p.root_mounts("image", "ext4")
    assert "privileged" not in p.newcontainer("c", mounts)
    assert p.newcontainer("c", mounts, privileged=True)["privileged"] is True


@pytest.mark.parametrize(
    "name, expected",
    [
        ("NET_ADMIN", "NET_ADMIN"),
        ("cap_net_admin", "NET_ADMIN"),
        ("Cap_Sys_Boot", "SYS_BOOT"),
        ("all", "ALL"),
        ("CAP_CHECKPOINT_RESTORE", "CHECKPOINT_RESTORE"),
        ("CAP_NOPE", None),
        ("", None),
    ],
)
def test_capability_names(name, expected):
    assert p.capability_name(name) == expected


def test_capabilities_match_the_agent():
    """The host's list of names is the agent's table (hyperstart/security.c), in order."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "hyperstart" / "security.c").read_text()
    table = re.findall(r'\[CAP_(\w+)\] = "(\w+)"', text)
    assert [name for _, name in table] == list(p.CAPABILITIES)
    assert all(c == n for c, n in table)
