"""Docker's legacy links (``--link NAME:ALIAS``): the linked container's variables in the
linking container's environment, the names a link gives, and removing a link.

A link is kept as ``NAME:ALIAS`` in the linking (parent) container's HostSpec.links; the
name resolution itself (the alias in /etc/hosts) is in hosts.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hyperd.errors import Conflict, NotFound

from .model import Container

# Variables a build adds to every image, not worth passing on (as moby's links.go).
_SKIPPED = ("HOME", "PATH")


def parse(link: str) -> tuple[str, str]:
    """(linked container's name, alias) of a stored link."""
    name, _, alias = link.partition(":")
    return name, alias or name


def _prefix(alias: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", alias.upper())


def env(c: Container, find) -> list[str]:
    """The environment c's links give it (``find(name)`` looks a container up, or None).

    As Docker: ``ALIAS_NAME=/c/alias``, ``ALIAS_ENV_KEY=value`` for the linked container's
    own variables, and ``ALIAS_PORT*`` for its exposed ports when it has an address. A link
    to a container that is not running is refused, as Docker refuses it at start.
    """
    out = []
    for link in c.host.links:
        name, alias = parse(link)
        target = find(name)
        if target is None or not target.running:
            raise Conflict(f"Cannot link to a non running container: /{name} AS /{c.name}/{alias}")
        out += _link_env(_prefix(alias), f"/{c.name}/{alias}", target)
    return out


def _link_env(prefix: str, link_name: str, target: Container) -> list[str]:
    out = [f"{prefix}_NAME={link_name}"]
    for item in target.config.env:
        key, sep, value = item.partition("=")
        if sep and key not in _SKIPPED:
            out.append(f"{prefix}_ENV_{key}={value}")
    ports = sorted(_ports(target.config.exposed_ports))
    if target.ip and ports:
        port, proto = ports[0]
        out.append(f"{prefix}_PORT={proto}://{target.ip}:{port}")
        for port, proto in ports:
            p = f"{prefix}_PORT_{port}_{proto.upper()}"
            out += [
                f"{p}={proto}://{target.ip}:{port}",
                f"{p}_ADDR={target.ip}",
                f"{p}_PORT={port}",
                f"{p}_PROTO={proto}",
            ]
    return out


def _ports(exposed: Iterable[str]) -> set[tuple[int, str]]:
    out = set()
    for key in exposed:
        port, _, proto = key.partition("/")
        out.add((int(port), proto or "tcp"))
    return out


def names(c: Container, containers: Iterable[Container]) -> list[str]:
    """c's names as ``ps`` lists them: its own, then ``/PARENT/ALIAS`` for each link to it."""
    out = [f"/{c.name}"]
    for parent in containers:
        for link in parent.host.links:
            name, alias = parse(link)
            if name == c.name:
                out.append(f"/{parent.name}/{alias}")
    return out


def find_link(path: str, get) -> tuple[Container, str]:
    """The parent container and the stored link named by ``PARENT/ALIAS`` (``get`` looks a
    container up by name, raising NotFound)."""
    parent_name, _, alias = path.strip("/").rpartition("/")
    if not parent_name:
        raise Conflict("Conflict, cannot remove the default link name of the container")
    parent = get(parent_name)
    for link in parent.host.links:
        if parse(link)[1] == alias:
            return parent, link
    raise NotFound(f"No such link: /{parent_name}/{alias}")
