"""``hyper``'s entry point: the ``hyper`` script and ``python -m hyperctl.cli``.

The commands are click's, in hyperctl/group.py.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """The ``hyper`` entry point."""
    from hyperctl.group import cli

    cli.main(args=sys.argv[1:] if argv is None else argv, prog_name="hyper")


if __name__ == "__main__":  # pragma: no cover
    main()
