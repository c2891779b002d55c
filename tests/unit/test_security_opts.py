"""HostConfig's CapAdd/CapDrop and SecurityOpt, decoded as the Docker daemon reads them."""

import pytest

from hyperd.api import decode
from hyperd.errors import InvalidArgument


def _host(**fields):
    return decode.create_spec({"Image": "busybox", "HostConfig": fields}).host


def test_defaults_are_dockers():
    h = _host()
    assert (h.cap_add, h.cap_drop, h.privileged) == ([], [], False)
    assert (h.no_new_privileges, h.seccomp, h.security_opt) == (False, True, [])


@pytest.mark.parametrize(
    "opts, nnp, seccomp",
    [
        (["no-new-privileges"], True, True),
        (["no-new-privileges:true"], True, True),
        (["no-new-privileges=false"], False, True),
        (["seccomp=unconfined"], False, False),
        (["seccomp:unconfined", "no-new-privileges=1"], True, False),
        (["seccomp=builtin"], False, True),
        (["apparmor=unconfined", "label=disable", "disable"], False, True),
    ],
)
def test_security_opt(opts, nnp, seccomp):
    h = _host(SecurityOpt=opts)
    assert (h.no_new_privileges, h.seccomp, h.security_opt) == (nnp, seccomp, opts)


@pytest.mark.parametrize(
    "opt, message",
    [
        ("no-new-privileges=maybe", 'invalid --security-opt 2: "no-new-privileges=maybe"'),
        ("nonsense", 'invalid --security-opt 1: "nonsense"'),
        ("foo=bar", 'invalid --security-opt 2: "foo=bar"'),
        ('seccomp={"defaultAction":"SCMP_ACT_ALLOW"}', "custom seccomp profiles"),
    ],
)
def test_bad_security_opt_is_a_400(opt, message):
    with pytest.raises(InvalidArgument, match=message.replace("{", r"\{")) as info:
        _host(SecurityOpt=[opt])
    assert info.value.status == 400


def test_capabilities_any_spelling_and_unknown_refused():
    h = _host(CapAdd=["net_admin", "CAP_SYS_TIME", "ALL"], CapDrop=["MKNOD"])
    assert (h.cap_add, h.cap_drop) == (["net_admin", "CAP_SYS_TIME", "ALL"], ["MKNOD"])
    with pytest.raises(InvalidArgument, match='HostConfig.CapDrop: unknown capability: "CAP_NOPE"'):
        _host(CapDrop=["CAP_NOPE"])
