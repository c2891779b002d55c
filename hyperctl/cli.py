"""``hyper``'s entry point: the ``hyper`` script and ``python -m hyperctl.cli``.

The commands are click's, in hyperctl/group.py, except for plain ``hyper exec`` command
lines: they run without importing click (~45 ms of a ~100 ms exec), see
hyperctl/plainargs.py.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """The ``hyper`` entry point."""
    args = sys.argv[1:] if argv is None else list(argv)
    from hyperctl.execplain import run_plain

    code = run_plain(args)
    if code is not None:
        if argv is None:  # the program itself, not a caller in the same interpreter
            _exit_now(code)
        sys.exit(code)
    from hyperctl.group import cli

    cli.main(args=args, prog_name="hyper")


def _exit_now(code: int) -> None:
    """End a plain exec at once: its output flushed, without the interpreter's teardown of
    every module (a few ms of an exec that takes ~60)."""
    import os

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = code or 141
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
