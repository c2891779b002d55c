"""How a ``hyper`` command ends: Docker's exit codes, and an error said once, on one line of
stderr. Click-free, so that the plain ``exec`` path (hyperctl.execplain) ends as the click
group does."""

from __future__ import annotations

import os
import sys

from hyperapi.errors import HyperError

TYPE_CHECKING = False  # for annotations only: typing (~5 ms) and collections.abc (~2 ms)
if TYPE_CHECKING:
    from collections.abc import Callable

USAGE_EXIT = 125  # Docker's: a usage error, or an error of the daemon
INTERRUPTED_EXIT = 130
BROKEN_PIPE_EXIT = 141


def print_error(message: str) -> None:
    """One error, on one line of stderr."""
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    sys.stderr.write(f"hyper: {line}\n")
    sys.stderr.flush()


def run_command(command: Callable[[], object]) -> int:
    """Run ``command``; its exit code (its int result, else 0), or the code of the error it
    raised once that error has been said."""
    try:
        rv = command()
    except HyperError as e:
        print_error(e.message)
        return e.exit_code
    except KeyboardInterrupt:
        return INTERRUPTED_EXIT
    except BrokenPipeError:  # stdout's reader went away: no more output, and no traceback
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return BROKEN_PIPE_EXIT
    return rv if isinstance(rv, int) else 0
