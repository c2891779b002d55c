"""The container record: what was asked for, and what happened to it.

One container runs in one VM today; ``vm`` names the VM so that several containers may
share one (a pod) later without changing the record.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

CREATED, RUNNING, RESTARTING, EXITED, DEAD = "created", "running", "restarting", "exited", "dead"
ZERO_TIME = "0001-01-01T00:00:00Z"


def now_rfc3339() -> str:
    """The current time as Docker prints it (RFC 3339, nanosecond digits)."""
    t = time.time_ns()
    stamp = datetime.fromtimestamp(t // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{t % 1_000_000_000:09d}Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (0 for Docker's zero time)."""
    if not text or text.startswith("0001-"):
        return 0.0
    base, _, frac = text.rstrip("Z").partition(".")
    seconds = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return seconds + (float(f"0.{frac}") if frac else 0.0)


@dataclass
class RestartPolicy:
    """Docker's restart policy."""

    name: str = "no"  # no | on-failure | always | unless-stopped
    maximum_retry_count: int = 0

    def wants_restart(self, exit_code: int, restarts: int, stopped_by_user: bool) -> bool:
        """Should the daemon start the container again after this exit?"""
        if stopped_by_user or self.name == "no":
            return False
        if self.name == "on-failure":
            if exit_code == 0:
                return False
            return not self.maximum_retry_count or restarts < self.maximum_retry_count
        return True


@dataclass
class ContainerState:
    """Docker's State block plus hyper's reason for VM-level ends."""

    status: str = CREATED
    exit_code: int = 0
    error: str = ""
    reason: str = ""
    oom_killed: bool = False
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    restart_count: int = 0
    stopped_by_user: bool = False


@dataclass
class Container:
    """A container record (persisted as JSON in the state store)."""

    id: str
    name: str
    image: str  # as the user named it
    image_id: str
    created: str
    entrypoint: list[str]
    cmd: list[str]
    env: list[str]
    workdir: str
    user: str
    hostname: str
    tty: bool
    open_stdin: bool
    stdin_once: bool
    labels: dict[str, str]
    stop_signal: str
    auto_remove: bool
    restart: RestartPolicy
    cpus: int
    memory: int  # bytes
    nano_cpus: int = 0
    state: ContainerState = field(default_factory=ContainerState)
    vm: str = ""
    # stream seqs of the main process, so a restarted daemon can re-attach to them
    stdio_seq: int = 0
    stderr_seq: int = 0
    image_config: dict = field(default_factory=dict)
    # networking: "default" (the bridge) or "none"; ports as asked and as published
    network_mode: str = "default"
    port_requests: list[dict] = field(default_factory=list)  # {proto, host_ip, host_port, port}
    published: list[dict] = field(default_factory=list)  # the same, host_port resolved
    links: list[str] = field(default_factory=list)  # "name:alias"
    ip: str = ""
    mac: str = ""

    @property
    def args(self) -> list[str]:
        """The full command line: entrypoint then cmd."""
        return [*self.entrypoint, *self.cmd]

    @property
    def running(self) -> bool:
        """True while the main process runs (or the VM is starting it)."""
        return self.state.status in (RUNNING, RESTARTING)

    def to_dict(self) -> dict:
        """JSON-able form for the state store."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Container:
        """Inverse of to_dict."""
        data = dict(data)
        data["restart"] = RestartPolicy(**data.get("restart", {}))
        data["state"] = ContainerState(**data.get("state", {}))
        return cls(**data)
