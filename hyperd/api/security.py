"""HostConfig's security fields as Docker reads them: CapAdd/CapDrop and SecurityOpt.

Capabilities are checked against the ones the guest kernel has (``CAP_`` prefix and case
optional, ``ALL`` allowed). SecurityOpt takes Docker's ``no-new-privileges[:=]BOOL`` and
``seccomp=unconfined`` (or ``builtin``, the default filter); a custom seccomp profile is
refused, and AppArmor/SELinux options are accepted with no effect (the guest has neither).
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperd.agent.protocol import capability_name
from hyperd.errors import InvalidArgument

from .fields import Fields

# Docker's options with no meaning in a guest without AppArmor or SELinux.
IGNORED_OPTS = ("apparmor", "label", "systempaths", "writable-cgroups")


@dataclass(frozen=True)
class SecurityOpts:
    """A decoded HostConfig.SecurityOpt."""

    given: list[str]
    no_new_privileges: bool = False
    seccomp: bool = True


def capabilities(f: Fields, key: str) -> list[str]:
    """CapAdd or CapDrop, each name known to the guest kernel (kept as the user wrote it)."""
    names = f.str_list(key)
    for name in names:
        if capability_name(name) is None:
            raise InvalidArgument(f'{f.name(key)}: unknown capability: "{name}"')
    return names


def security_opts(f: Fields) -> SecurityOpts:
    """HostConfig.SecurityOpt, parsed as the Docker daemon does."""
    given = f.str_list("SecurityOpt")
    nnp, seccomp = False, True
    for opt in given:
        if opt == "no-new-privileges":
            nnp = True
            continue
        if opt == "disable":  # a label option
            continue
        sep = "=" if "=" in opt else ":"
        key, found, value = opt.partition(sep)
        if not found:
            raise InvalidArgument(f'invalid --security-opt 1: "{opt}"')
        if key == "no-new-privileges":
            nnp = _bool(opt, value)
        elif key == "seccomp":
            seccomp = _seccomp(value)
        elif key not in IGNORED_OPTS:
            raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')
    return SecurityOpts(given, nnp, seccomp)


def _bool(opt: str, value: str) -> bool:
    # Go's strconv.ParseBool
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')


def _seccomp(value: str) -> bool:
    if value == "unconfined":
        return False
    if value in ("", "builtin"):
        return True
    raise InvalidArgument(
        "custom seccomp profiles are not supported: use seccomp=unconfined, or nothing "
        "for the default filter"
    )
