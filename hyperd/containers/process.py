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


def host_dns() -> list[str]:
    """Nameservers of the host that a guest can reach (not the host's loopback)."""
    servers = []
    with contextlib.suppress(OSError), open("/etc/resolv.conf") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver" and not parts[1].startswith("127."):
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
    )
