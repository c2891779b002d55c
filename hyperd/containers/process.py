"""The agent's PROCESS for a container's main process and for its execs."""

from __future__ import annotations

import contextlib

from hyperd.agent import protocol as p

from .io import INIT
from .model import Container
from .spec import ContainerConfig, ExecSpec

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def merge_env(*lists: list[str]) -> dict[str, str]:
    """Later lists override earlier ones, key by key (KEY=VALUE strings); ``KEY`` alone unsets."""
    out: dict[str, str] = {}
    for env in lists:
        for item in env:
            key, sep, value = item.partition("=")
            if not key:
                continue
            if sep:
                out[key] = value
            else:
                out.pop(key, None)
    return out


def host_dns(guest: bool = True) -> list[str]:
    """Nameservers of the host: those a guest can reach (not the host's loopback), or all
    of them with ``guest=False`` (the embedded DNS server forwards from the host)."""
    servers = []
    with contextlib.suppress(OSError), open("/etc/resolv.conf") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2 or parts[0] != "nameserver":
                continue
            if not (guest and parts[1].startswith("127.")):
                servers.append(parts[1])
    return servers


def _env(config: ContainerConfig, tty: bool, extra, linked=()) -> dict[str, str]:
    return merge_env(
        [f"PATH={DEFAULT_PATH}", f"HOSTNAME={config.hostname}"],
        linked,
        config.env,
        ["TERM=xterm"] if tty else [],
        extra,
    )


def security(c: Container, exec_privileged: bool = False) -> p.Security:
    """What c's processes may do; ``exec --privileged`` adds every capability to one exec
    (the container's seccomp and no_new_privs stay, as in Docker)."""
    h = c.host
    return p.Security(
        cap_add=["ALL"] if exec_privileged and not h.privileged else list(h.cap_add),
        cap_drop=list(h.cap_drop),
        privileged=h.privileged,
        no_new_privileges=h.no_new_privileges,
        seccomp=h.seccomp,
    )


def main_process(c: Container, size: tuple[int, int], extra_env: list[str] = ()) -> p.Process:
    """The container's own process (``extra_env``: what its links give it, under its own)."""
    cfg = c.config
    user, _, group = cfg.user.partition(":")
    rows, cols = size
    return p.Process(
        INIT,
        c.args,
        c.stdio_seq,
        c.stderr_seq,
        _env(cfg, cfg.tty, [], extra_env),
        cfg.working_dir or "/",
        user,
        group,
        additional_groups=list(c.host.group_add),
        terminal=cfg.tty,
        rows=rows,
        columns=cols,
        security=security(c),
    )


def exec_process(
    c: Container, eid: str, spec: ExecSpec, stdio: int, stderr: int, size: tuple[int, int]
) -> p.Process:
    """A process started with exec in the running container."""
    user, _, group = (spec.user or c.config.user).partition(":")
    rows, cols = size
    return p.Process(
        eid,
        spec.cmd,
        stdio,
        stderr,
        _env(c.config, spec.tty, spec.env),
        spec.working_dir or c.config.working_dir or "/",
        user,
        group,
        terminal=spec.tty,
        rows=rows,
        columns=cols,
        security=security(c, spec.privileged),
    )
