"""Instructions that change only an image's config (CMD, ENV, EXPOSE, LABEL, …).

Shared by the builder and by ``commit``/``import`` ``--change``. The config is Docker's
``config`` object (``Cmd``, ``Env``, ``ExposedPorts``, …), edited in place.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping

from hyperapi.portspec import parse_exposed
from hyperd.containers.signals import parse_signal
from hyperd.errors import InvalidArgument

from .dockerfile import Instruction, parse_instruction
from .lexer import expand, split, split_raw

DEFAULT_SHELL = ["/bin/sh", "-c"]
# What ``docker commit --change`` and ``docker import --change`` accept.
CHANGE_COMMANDS = (
    "CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "STOPSIGNAL",
    "USER", "VOLUME", "WORKDIR",
)  # fmt: skip
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


def env_map(config: dict) -> dict[str, str]:
    """The config's ``Env`` list as a mapping (later entries win)."""
    out = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def set_env(config: dict, key: str, value: str) -> None:
    """Set one variable in the config's ``Env``, keeping the order of the others."""
    env = list(config.get("Env") or [])
    for i, item in enumerate(env):
        if item.partition("=")[0] == key:
            env[i] = f"{key}={value}"
            break
    else:
        env.append(f"{key}={value}")
    config["Env"] = env


def key_values(inst: Instruction, env: Mapping[str, str], escape: str) -> list[tuple[str, str]]:
    """ENV/LABEL pairs: ``K=V K2="v 2"``, or the legacy ``K value with spaces``."""
    words = split_raw(inst.args, escape)
    if not words:
        raise InvalidArgument(f"{inst.cmd} requires at least one argument")
    if "=" not in words[0]:
        if inst.cmd == "LABEL" or len(words) < 2:
            raise InvalidArgument(f"{inst.cmd} names must be followed by =VALUE: {inst.original}")
        value = inst.args[len(inst.args.split(None, 1)[0]) :].strip()
        return [(expand(words[0], env, escape), expand(value, env, escape))]
    out = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"{inst.cmd} expects KEY=VALUE pairs, not {word!r}")
        out.append((expand(key, env, escape), expand(value, env, escape)))
    return out


def command(inst: Instruction, config: dict) -> list[str]:
    """CMD/ENTRYPOINT/RUN arguments: the exec form, or the shell form under SHELL."""
    if inst.json is not None:
        return list(inst.json)
    shell = config.get("Shell") or DEFAULT_SHELL
    return [*shell, inst.args] if inst.args else []


def parse_duration(text: str, what: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds."""
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise InvalidArgument(f"{what}: time: invalid duration {text!r}")
    return int(total)


def exposed_ports(words: list[str]) -> list[str]:
    """EXPOSE words as ``port/proto`` keys (``8000-8002`` gives three)."""
    out = []
    for word in words:
        port, _, proto = word.partition("/")
        lo, dash, hi = port.partition("-")
        proto = proto.lower() or "tcp"
        first, last = (lo, hi) if dash else (lo, lo)
        if not (first.isdigit() and last.isdigit()) or int(last) < int(first):
            raise InvalidArgument(f"invalid containerPort: {word}")
        for n in range(int(first), int(last) + 1):
            parse_exposed(f"{n}/{proto}")
            out.append(f"{n}/{proto}")
    return out


class ConfigEditor:
    """Applies metadata instructions to a ``config`` object, as Docker's dispatchers do."""

    def __init__(self, config: dict, escape: str = "\\"):
        self.config = config
        self.escape = escape
        self.cmd_set = False  # a CMD was given (ENTRYPOINT then keeps it)
        self.author: str | None = None  # from MAINTAINER

    def apply(self, inst: Instruction, env: Mapping[str, str] | None = None) -> None:
        """Apply one instruction; ``env`` expands variables (default: the config's Env)."""
        handler = getattr(self, "_" + inst.cmd.lower(), None)
        if handler is None:
            raise InvalidArgument(f"{inst.cmd} does not change an image's config")
        handler(inst, env_map(self.config) if env is None else env)

    def _words(self, inst: Instruction, env) -> list[str]:
        return split(inst.args, env, self.escape)

    def _word(self, inst: Instruction, env) -> str:
        words = self._words(inst, env)
        if len(words) != 1:
            raise InvalidArgument(f"{inst.cmd} requires exactly one argument")
        return words[0]

    def _cmd(self, inst, env) -> None:
        self.config["Cmd"] = command(inst, self.config)
        self.cmd_set = True

    def _entrypoint(self, inst, env) -> None:
        self.config["Entrypoint"] = command(inst, self.config) or None
        if not self.cmd_set:
            self.config["Cmd"] = None

    def _env(self, inst, env) -> None:
        for key, value in key_values(inst, env, self.escape):
            set_env(self.config, key, value)
            if isinstance(env, dict):
                env[key] = value

    def _label(self, inst, env) -> None:
        labels = dict(self.config.get("Labels") or {})
        labels.update(key_values(inst, env, self.escape))
        self.config["Labels"] = labels

    def _expose(self, inst, env) -> None:
        ports = dict(self.config.get("ExposedPorts") or {})
        for key in exposed_ports(self._words(inst, env)):
            ports[key] = {}
        self.config["ExposedPorts"] = ports

    def _user(self, inst, env) -> None:
        self.config["User"] = self._word(inst, env)

    def _workdir(self, inst, env) -> None:
        path = expand(inst.args, env, self.escape)
        if not path:
            raise InvalidArgument("WORKDIR requires exactly one argument")
        base = self.config.get("WorkingDir") or "/"
        self.config["WorkingDir"] = posixpath.normpath(posixpath.join(base, path))

    def _volume(self, inst, env) -> None:
        paths = inst.json if inst.json is not None else self._words(inst, env)
        if not paths or any(not p.strip() for p in paths):
            raise InvalidArgument("VOLUME specified can not be an empty string")
        volumes = dict(self.config.get("Volumes") or {})
        for p in paths:
            volumes[p.strip()] = {}
        self.config["Volumes"] = volumes

    def _stopsignal(self, inst, env) -> None:
        sig = self._word(inst, env)
        parse_signal(sig)
        self.config["StopSignal"] = sig

    def _shell(self, inst, env) -> None:
        if not inst.json:
            raise InvalidArgument("SHELL requires the arguments to be in JSON form")
        self.config["Shell"] = list(inst.json)

    def _maintainer(self, inst, env) -> None:
        self.author = expand(inst.args, env, self.escape)

    def _onbuild(self, inst, env) -> None:
        trigger = parse_instruction(inst.args, inst.line, self.escape)
        if trigger.cmd in ("ONBUILD", "FROM", "MAINTAINER"):
            raise InvalidArgument(f"{trigger.cmd} isn't allowed as an ONBUILD trigger")
        self.config["OnBuild"] = [*(self.config.get("OnBuild") or []), inst.args.strip()]

    def _healthcheck(self, inst, env) -> None:
        kind, _, rest = inst.args.partition(" ")
        kind = kind.upper()
        if kind == "NONE":
            if rest.strip() or inst.flags:
                raise InvalidArgument("HEALTHCHECK NONE takes no arguments")
            self.config["Healthcheck"] = {"Test": ["NONE"]}
            return
        if kind != "CMD":
            raise InvalidArgument(f"Unknown type {kind!r} in HEALTHCHECK (try CMD)")
        sub = parse_instruction("CMD " + rest.strip(), inst.line, self.escape)
        test = ["CMD", *sub.json] if sub.json is not None else ["CMD-SHELL", sub.args]
        hc: dict = {"Test": test}
        names = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                 "start-interval": "StartInterval"}  # fmt: skip
        for flag, key in names.items():
            if inst.flag(flag):
                hc[key] = parse_duration(inst.flag(flag), f"--{flag}")
        if inst.flag("retries"):
            if not inst.flag("retries").isdigit():
                raise InvalidArgument(f"--retries: invalid number {inst.flag('retries')!r}")
            hc["Retries"] = int(inst.flag("retries"))
        self.config["Healthcheck"] = hc


def apply_changes(config: dict, changes: list[str]) -> dict:
    """``commit``/``import`` ``--change``: each a Dockerfile instruction (one per item, or
    several lines in one item); returns the edited ``config``."""
    editor = ConfigEditor(config)
    for text in changes:
        for line in text.splitlines():
            if not line.strip():
                continue
            inst = parse_instruction(line)
            if inst.cmd not in CHANGE_COMMANDS:
                raise InvalidArgument(f"{inst.cmd.lower()} is not a valid change command")
            editor.apply(inst)
    return config
