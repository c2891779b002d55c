"""Restart policy as a unit (after moby's restartmanager): whether, and after what delay.

The delay doubles after each quick failure (from 100 ms up to a minute) and starts over once
a run has lasted 10 s, so a crash loop backs off while a service that ran well restarts fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import RestartPolicy

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
STABLE_RUN = 10.0


@dataclass
class RestartManager:
    """One container's restart decisions."""

    policy: RestartPolicy
    restart_count: int = 0
    delay: float = 0.0

    def should_restart(self, exit_code: int, manually_stopped: bool, ran_for: float) -> bool:
        """Should this exit start the container again? Updates the delay for ``next_delay``."""
        if manually_stopped:
            return False
        name = self.policy.name
        if name in ("always", "unless-stopped"):
            wanted = True
        elif name == "on-failure":
            limit = self.policy.maximum_retry_count
            wanted = exit_code != 0 and (not limit or self.restart_count < limit)
        else:
            wanted = False
        if wanted:
            if ran_for >= STABLE_RUN or not self.delay:
                self.delay = BACKOFF_START
            else:
                self.delay = min(self.delay * 2, BACKOFF_MAX)
        return wanted
