"""The container record: what was asked for (typed specs), where it runs, and its state.

A container lives in a sandbox (``sandbox`` names it: one VM with its network endpoints and
agent). Today each sandbox holds one container; nothing here assumes it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field

from .spec import ContainerConfig, EndpointSpec, HostSpec, MountSpec
from .state import State, parse_rfc3339

RECORD_VERSION = 2


@dataclass
class Attachment:
    """The container's place on one network (what inspect's NetworkSettings.Networks shows)."""

    network_id: str = ""
    aliases: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    ip: str = ""
    prefix: int = 0
    gateway: str = ""
    mac: str = ""
    ipv4_address: str = ""  # as asked for (IPAMConfig)
    driver_opts: dict[str, str] = field(default_factory=dict)  # as given; shown by inspect
    mac_address: str = ""  # as asked for (EndpointSettings.MacAddress)
    link_local_ips: list[str] = field(default_factory=list)  # as asked for (IPAMConfig)

    @classmethod
    def from_spec(cls, ep: EndpointSpec, network_id: str) -> Attachment:
        """A new attachment, not connected yet."""
        return cls(
            network_id, list(ep.aliases), list(ep.links), ipv4_address=ep.ipv4_address,
            driver_opts=dict(ep.driver_opts), mac_address=ep.mac_address,
            link_local_ips=list(ep.link_local_ips),
        )  # fmt: skip


@dataclass
class Published:
    """A port published on the host, as bound."""

    proto: str
    host_ip: str
    host_port: int
    port: int


@dataclass
class Container:
    """A container record (persisted as JSON in the state store)."""

    id: str
    name: str
    created: str
    image: str  # as the user named it
    image_id: str
    config: ContainerConfig  # image defaults applied
    host: HostSpec
    cpus: int
    memory: int  # bytes (the VM's memory)
    state: State = field(default_factory=State)
    restart_count: int = 0
    networks: dict[str, Attachment] = field(default_factory=dict)
    published: list[Published] = field(default_factory=list)
    mounts: list[MountSpec] = field(default_factory=list)  # resolved: volumes named
    sandbox: str = ""  # the VM (domain name) this container runs in
    # stream seqs of the main process, so a restarted daemon can re-attach to them
    stdio_seq: int = 0
    stderr_seq: int = 0
    version: int = RECORD_VERSION

    @property
    def args(self) -> list[str]:
        """The full command line: entrypoint then cmd."""
        return [*(self.config.entrypoint or []), *(self.config.cmd or [])]

    @property
    def running(self) -> bool:
        """True while running, paused or restarting."""
        return self.state.running

    @property
    def created_unix(self) -> float:
        return parse_rfc3339(self.created)

    @property
    def ip(self) -> str:
        """The address on the first network (Docker's NetworkSettings.IPAddress)."""
        return next((a.ip for a in self.networks.values() if a.ip), "")

    def to_dict(self) -> dict:
        """JSON-able form for the state store."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data = {k: _plain(v) for k, v in data.items()}
        data["state"] = self.state.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Container:
        """Inverse of to_dict; raises ValueError for a record this version cannot read."""
        if data.get("version") != RECORD_VERSION:
            raise ValueError(f"record version {data.get('version')} (this hyperd reads 2)")
        data = dict(data)
        state = State.from_dict(data.pop("state", {}))
        c = _build(cls, {**data, "state": {}})
        c.state = state
        return c


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _build(tp, value):
    """Rebuild a value of type ``tp`` (dataclasses, lists, dicts, optionals) from JSON data."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _build(inner[0], value)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_build(item, v) for v in value]
    if origin is tuple:
        return tuple(value)
    if origin is dict:
        _, item = typing.get_args(tp)
        return {k: _build(item, v) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp) if f.init}
        return tp(**{k: _build(hints[k], v) for k, v in value.items() if k in names})
    return value
