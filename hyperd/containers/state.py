"""A container's state, which owns its waiters (after moby's container/state.go).

Every change of state goes through one of the ``set_*`` methods, and each of them wakes the
waiters whose condition it meets, so ``docker wait`` (which may be asked before ``start``)
answers exactly once per exit, for every condition Docker has.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

CREATED, RUNNING, PAUSED, RESTARTING, REMOVING, EXITED, DEAD = (
    "created",
    "running",
    "paused",
    "restarting",
    "removing",
    "exited",
    "dead",
)
ZERO_TIME = "0001-01-01T00:00:00Z"
# Docker's wait conditions.
NOT_RUNNING, NEXT_EXIT, REMOVED = "not-running", "next-exit", "removed"
CONDITIONS = (NOT_RUNNING, NEXT_EXIT, REMOVED)


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
class ExitStatus:
    """What a waiter learns: the exit code and the error of the run that ended, if any."""

    exit_code: int
    error: str = ""


@dataclass
class State:
    """Docker's State block, plus why a VM ended (``reason``); waiters are not persisted."""

    status: str = CREATED
    exit_code: int = 0
    error: str = ""
    reason: str = ""
    oom_killed: bool = False
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    manually_stopped: bool = False
    health: str = ""  # "" without a healthcheck, else starting | healthy | unhealthy
    failing_streak: int = 0
    health_log: list[dict] = field(default_factory=list)  # the last probes, Docker's shape
    _waiters: list[tuple[str, asyncio.Future]] = field(default_factory=list, repr=False)

    # -- reading -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Docker's ``Running``: true while running, paused or restarting."""
        return self.status in (RUNNING, PAUSED, RESTARTING)

    @property
    def paused(self) -> bool:
        return self.status == PAUSED

    def to_dict(self) -> dict:
        """The persisted form."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    @classmethod
    def from_dict(cls, data: dict) -> State:
        """Inverse of to_dict (unknown keys from other versions are dropped)."""
        known = {k for k in cls.__dataclass_fields__ if not k.startswith("_")}
        return cls(**{k: v for k, v in data.items() if k in known})

    # -- changing ----------------------------------------------------------------------

    def set_running(self) -> None:
        """The main process runs."""
        self.status = RUNNING
        self.started_at = now_rfc3339()
        self.exit_code, self.error, self.reason = 0, "", ""
        self.oom_killed = False
        self.set_health("", 0, self.health_log)  # a new run is checked afresh

    def set_health(self, status: str, failing_streak: int = 0, log: list | None = None) -> None:
        """The healthcheck's verdict (see health.py)."""
        self.health, self.failing_streak = status, failing_streak
        self.health_log = list(log or [])

    def set_stopped(
        self, exit_code: int, reason: str = "", error: str = "", oom_killed: bool = False
    ) -> None:
        """The main process (or its VM) ended; ``oom_killed``: the OOM killer killed a
        process of the container during the run (Docker's OOMKilled)."""
        self.status = EXITED
        self.oom_killed = oom_killed
        self._ended(exit_code, reason, error)

    def set_restarting(self, exit_code: int, reason: str = "", oom_killed: bool = False) -> None:
        """Ended, and the restart policy will start it again (waiters hear of this exit)."""
        self.status = RESTARTING
        self.oom_killed = oom_killed
        self._ended(exit_code, reason, "")

    def set_start_failed(self, error: str, exit_code: int = 128) -> None:
        """A start that never ran the process: back to exited (or created) with the error."""
        self.status = CREATED if self.started_at == ZERO_TIME else EXITED
        self.exit_code, self.error = exit_code, error
        self._notify((NEXT_EXIT, NOT_RUNNING), ExitStatus(exit_code, error))

    def set_paused(self, paused: bool) -> None:
        """The VM was suspended or resumed."""
        self.status = PAUSED if paused else RUNNING

    def set_vm_health(self, reason: str) -> None:
        """The run's VM stopped answering (why: State.Error and Hyper.Reason say it), or
        answers again ("")."""
        if reason:
            self.error = self.reason = f"VM not responding: {reason}"
        elif self.error.startswith("VM not responding"):
            self.error = self.reason = ""

    def set_removing(self) -> None:
        self.status = REMOVING

    def set_removed(self) -> None:
        """The container is gone: every waiter answers (the error of a failed start was
        reported by that start already)."""
        self._notify(CONDITIONS, ExitStatus(self.exit_code))

    def _ended(self, exit_code: int, reason: str, error: str) -> None:
        self.exit_code, self.reason, self.error = exit_code, reason, error
        self.finished_at = now_rfc3339()
        self._notify((NEXT_EXIT, NOT_RUNNING), ExitStatus(exit_code, error))

    # -- waiting -----------------------------------------------------------------------

    def wait(self, condition: str) -> asyncio.Future:
        """A future of the ExitStatus that meets ``condition``.

        not-running answers at once when the container is not running (created included);
        next-exit waits for the next end of a run; removed waits for the removal.
        """
        fut = asyncio.get_running_loop().create_future()
        if condition == NOT_RUNNING and not self.running:
            fut.set_result(ExitStatus(self.exit_code, self.error))
        else:
            self._waiters.append((condition, fut))
        return fut

    def _notify(self, conditions, status: ExitStatus) -> None:
        keep = []
        for condition, fut in self._waiters:
            if fut.done():
                continue
            if condition in conditions:
                fut.set_result(status)
            else:
                keep.append((condition, fut))
        self._waiters = keep
