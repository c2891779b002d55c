"""Options declared once, for click and for the one command line parsed without it.

``hyper exec`` runs in a running container in ~20 ms; importing click costs ~45 ms more
(Python itself starts in ~20). So the entry point parses exec's *plain* command lines
itself, with :func:`parse_plain`, from the same declarations that build its click options
(:func:`click_options`); anything else, --help, an unknown option, a missing argument, is
left to click, which parses and reports it. tests/cli/test_plainargs.py checks that every
command line parsed here gives click's values.
"""

from __future__ import annotations

TYPE_CHECKING = False  # for annotations only: typing (~5 ms) and collections.abc (~2 ms)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


class Opt(tuple):
    """One option: its flags (``decls``: ``-d``, ``--detach``), its parameter ``name``, its
    ``help``, whether it is a boolean ``flag`` or a ``multiple`` value, its ``metavar``.

    A named tuple, written out: collections.namedtuple imports all of collections (~2 ms
    of a plain ``hyper exec``)."""

    __slots__ = ()
    _fields = ("decls", "name", "help", "flag", "multiple", "metavar")

    def __new__(cls, decls, name, help, flag=False, multiple=False, metavar=None):
        return tuple.__new__(cls, (decls, name, help, flag, multiple, metavar))

    decls = property(lambda self: self[0])
    name = property(lambda self: self[1])
    help = property(lambda self: self[2])
    flag = property(lambda self: self[3])
    multiple = property(lambda self: self[4])
    metavar = property(lambda self: self[5])

    def __repr__(self) -> str:
        return f"Opt({', '.join(f'{f}={v!r}' for f, v in zip(self._fields, self, strict=True))})"

    def __getnewargs__(self):
        return tuple(self)

    def default(self):
        """Click's value when the option is absent."""
        return False if self.flag else () if self.multiple else None


def click_options(opts: Sequence[Opt], **extra) -> Callable:
    """A decorator adding ``opts`` as click options (``extra`` for every one of them)."""
    import click

    def decorate(f: Callable) -> Callable:
        for o in reversed(opts):
            kw = {"is_flag": True} if o.flag else {"multiple": o.multiple, "metavar": o.metavar}
            f = click.option(*o.decls, o.name, help=o.help, **kw, **extra)(f)
        return f

    return decorate


def parse_plain(args: Sequence[str], opts: Sequence[Opt]) -> tuple[dict, list[str]] | None:
    """``args`` as click parses them with ``opts`` and without interspersed arguments: the
    options' values and the arguments from the first positional one on (after a ``--``);
    None for any command line click would answer itself (an unknown option, a flag given
    a value, a missing value)."""
    by_decl = {d: o for o in opts for d in o.decls}
    values = {o.name: o.default() for o in opts}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return values, list(args[i + 1 :])
        if arg[:1] != "-" or arg == "-":
            return values, list(args[i:])
        parse = _long if arg.startswith("--") else _short
        used = parse(arg, args[i + 1 : i + 2], by_decl, values)
        if used is None:
            return None
        i += used
    return values, []


def _set(values: dict, opt: Opt, value) -> None:
    values[opt.name] = (*values[opt.name], value) if opt.multiple else value


def _long(arg: str, after: Sequence[str], by_decl: dict, values: dict) -> int | None:
    """``--name``, ``--name=value`` or ``--name value``: how many arguments it took."""
    name, eq, value = arg.partition("=")
    opt = by_decl.get(name)
    if opt is None or (opt.flag and eq):
        return None
    if opt.flag or eq:
        _set(values, opt, True if opt.flag else value)
        return 1
    if not after:
        return None
    _set(values, opt, after[0])
    return 2


def _short(arg: str, after: Sequence[str], by_decl: dict, values: dict) -> int | None:
    """``-it``, ``-eK=V``, ``-e K=V``: short options, the last may take a value."""
    for j in range(1, len(arg)):
        opt = by_decl.get("-" + arg[j])
        if opt is None:
            return None
        if opt.flag:
            _set(values, opt, True)
        elif j + 1 < len(arg):
            _set(values, opt, arg[j + 1 :])
            return 1
        elif after:
            _set(values, opt, after[0])
            return 2
        else:
            return None
    return 1
