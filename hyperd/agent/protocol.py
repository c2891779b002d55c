"""The host <-> guest protocol, defined once for the host.

This module mirrors ``hyperstart/api.h`` (the guest's definition); change both together
and bump ``API_VERSION`` when a frame or a payload changes meaning.

Control frame (big-endian)::

     0               4               8
    +---------------+---------------+-------------------------------+
    |   u32 code    |  u32 length   |  payload (length - 8 bytes)   |
    +---------------+---------------+-------------------------------+

Stream frame (big-endian)::

     0                               8               12
    +-------------------------------+---------------+-----------------+
    |            u64 seq            |  u32 length   | data (len - 12) |
    +-------------------------------+---------------+-----------------+

Lengths count their header. A stream frame without data is EOF for its seq.

Every command is answered, in order, by ACK or ERROR; the ERROR payload is a JSON
object ``{"message": str, "exitCode": N (opt.), "errno": N (opt.)}`` (version 2).
Version 3: each container's processes run in its own PID, mount, IPC and UTS
namespaces; PROCESS carries what the process may do (``Security``) and NEWCONTAINER
whether the container is privileged.
Processes and archive transfers end with a PROCESSASYNCEVENT
``{"container", "process", "event": "finished", "status": N, "error": str (opt.),
"oomKilled": true (opt.)}`` sent after the EOF of their streams. Version 4: a process's
event says ``oomKilled`` when the guest kernel's OOM killer killed a process of its
container while it ran; each container has a memory cgroup whose limit is what the guest
had available less 6 MiB, so that happens within seconds. Version 5: STARTPOD may carry
the host's wall clock (``time``, ns since the epoch) and random bytes (``seed``, hex) the
guest mixes into its CRNG: a guest restored from a template wakes with the template's
clock and CRNG state.
"""

from __future__ import annotations

import enum
import json
import stat
import struct
from dataclasses import dataclass, field

API_VERSION = 6

CONTROL_PORT = "sh.hyper.channel.0"
STREAM_PORT = "sh.hyper.channel.1"
# (version 6) The agent's binary run with this first argument exits 0 at once: the
# program of the warm-up container (hyperd.sandbox.warmup), exec'd as /proc/self/exe.
EXIT_ARG = "--exit"

CONTROL_HEADER = struct.Struct(">II")
STREAM_HEADER = struct.Struct(">QI")
MAX_CONTROL_FRAME = 16 * 1024 * 1024
MAX_STREAM_DATA = 64 * 1024


class Code(enum.IntEnum):
    """Control frame codes (api.h ``enum hyper_code``); numbers are never reused."""

    GETVERSION = 0
    STARTPOD = 1
    DESTROYPOD = 4
    EXECCMD = 6
    READY = 8
    ACK = 9
    ERROR = 10
    WINSIZE = 11
    PING = 12
    NEXT = 14  # deprecated: the guest answers ERROR
    WRITEFILE = 15
    READFILE = 16
    NEWCONTAINER = 17
    KILLCONTAINER = 18
    ONLINECPUMEM = 19
    SETUPINTERFACE = 20
    SETUPROUTE = 21
    REMOVECONTAINER = 22
    PROCESSASYNCEVENT = 23
    SIGNALPROCESS = 24
    DELETEINTERFACE = 25
    PS = 26
    SYNC = 27
    STATPATH = 28
    ARCHIVEOUT = 29
    ARCHIVEIN = 30
    FREEZE = 31


class ProtocolError(Exception):
    """A frame from the guest does not follow the protocol."""


# -- framing ---------------------------------------------------------------------------


def encode_control(code: int, payload: bytes = b"") -> bytes:
    """Frame ``payload`` under ``code``."""
    length = CONTROL_HEADER.size + len(payload)
    if length > MAX_CONTROL_FRAME:
        raise ValueError(f"control frame of {length} bytes exceeds {MAX_CONTROL_FRAME}")
    return CONTROL_HEADER.pack(code, length) + payload


def decode_control_header(header: bytes) -> tuple[int, int]:
    """Return (code, payload length) of an 8-byte control header."""
    code, length = CONTROL_HEADER.unpack(header)
    if length < CONTROL_HEADER.size or length > MAX_CONTROL_FRAME:
        raise ProtocolError(f"control frame length {length} out of range")
    return code, length - CONTROL_HEADER.size


def encode_stream(seq: int, data: bytes = b"") -> bytes:
    """Frame ``data`` (at most MAX_STREAM_DATA bytes) for ``seq``; empty data is EOF."""
    if len(data) > MAX_STREAM_DATA:
        raise ValueError(f"stream frame of {len(data)} bytes exceeds {MAX_STREAM_DATA}")
    return STREAM_HEADER.pack(seq, STREAM_HEADER.size + len(data)) + data


def decode_stream_header(header: bytes) -> tuple[int, int]:
    """Return (seq, data length) of a 12-byte stream header."""
    seq, length = STREAM_HEADER.unpack(header)
    if length < STREAM_HEADER.size or length > STREAM_HEADER.size + MAX_STREAM_DATA:
        raise ProtocolError(f"stream frame length {length} out of range")
    return seq, length - STREAM_HEADER.size


def json_payload(obj: dict) -> bytes:
    """Encode a JSON payload compactly."""
    return json.dumps(obj, separators=(",", ":")).encode()


# -- payloads --------------------------------------------------------------------------

# Capability names the agent knows (Linux 6.1), without the CAP_ prefix.
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip


def capability_name(name: str) -> str | None:
    """A capability as the agent spells it ("NET_ADMIN", or "ALL"); None when unknown."""
    upper = name.upper()
    bare = upper[4:] if upper.startswith("CAP_") else upper
    return bare if bare == "ALL" or bare in CAPABILITIES else None


@dataclass
class Security:
    """What a process may do (PROCESS fields): Docker's default capabilities changed by
    ``cap_add``/``cap_drop`` (names, or "ALL"), everything when ``privileged``, the
    default seccomp filter unless ``seccomp`` is False, and no_new_privs on request."""

    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    no_new_privileges: bool = False
    seccomp: bool = True

    def to_json(self) -> dict:
        """The wire fields that differ from the defaults."""
        out: dict = {}
        if self.cap_add:
            out["capAdd"] = list(self.cap_add)
        if self.cap_drop:
            out["capDrop"] = list(self.cap_drop)
        if self.privileged:
            out["privileged"] = True
        if self.no_new_privileges:
            out["noNewPrivileges"] = True
        if not self.seccomp:
            out["seccomp"] = False
        return out


@dataclass
class Process:
    """A PROCESS object (api.h): what to run and where its stdio goes."""

    id: str
    args: list[str]
    stdio: int
    stderr: int = 0
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = ""
    group: str = ""
    additional_groups: list[str] = field(default_factory=list)
    terminal: bool = False
    rows: int = 0
    columns: int = 0
    security: Security = field(default_factory=Security)

    def to_json(self) -> dict:
        """The wire form."""
        out = {
            "id": self.id,
            "args": list(self.args),
            "envs": [{"env": k, "value": v} for k, v in self.env.items()],
            "workdir": self.workdir or "/",
            "terminal": self.terminal,
            "stdio": self.stdio,
            "stderr": 0 if self.terminal else self.stderr,
        }
        if self.user:
            out["user"] = self.user
        if self.group:
            out["group"] = self.group
        if self.additional_groups:
            out["additionalGroups"] = list(self.additional_groups)
        if self.terminal and self.rows and self.columns:
            out["row"], out["column"] = self.rows, self.columns
        out.update(self.security.to_json())
        return out


SEED_MAX_BYTES = 256  # api.h: "seed" is at most 512 hex digits


def startpod(
    hostname: str,
    dns: list[str] | None = None,
    search: list[str] | None = None,
    *,
    time_ns: int | None = None,
    seed: bytes | None = None,
) -> dict:
    """STARTPOD payload; ``time_ns`` (the host's wall clock, ns since the epoch) and
    ``seed`` (random bytes for the guest's CRNG) are sent when given."""
    out: dict = {"hostname": hostname, "dns": dns or [], "dnsSearch": search or []}
    if time_ns is not None:
        out["time"] = int(time_ns)
    if seed is not None:
        if len(seed) > SEED_MAX_BYTES:
            raise ValueError(f"seed of {len(seed)} bytes exceeds {SEED_MAX_BYTES}")
        out["seed"] = bytes(seed).hex()
    return out


@dataclass
class Mount:
    """A MOUNT object of NEWCONTAINER (api.h).

    ``source`` is a virtio-blk serial (block), a 9p mount tag (9p) or ignored (tmpfs).
    Target "/" entries build the root: ``layer`` "lower" (read-only image, first =
    topmost) or "upper" (the writable layer disk). Other targets are mounted inside
    the root in list order; ``populate`` copies the root's content at ``target`` into
    an empty filesystem first (Docker's volume copy).
    """

    type: str
    source: str
    target: str
    fstype: str = ""
    options: str = ""
    readonly: bool = False
    layer: str = ""
    populate: bool = False

    def to_json(self) -> dict:
        """The wire form."""
        out = {
            "type": self.type,
            "source": self.source,
            "target": self.target,
            "readonly": self.readonly,
        }
        for key in ("fstype", "options", "layer"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.populate:
            out["populate"] = True
        return out


def root_mounts(image_serial: str, fstype: str, upper_serial: str = "") -> list[Mount]:
    """The root of a container: the image disk, plus a writable layer disk if given."""
    mounts = [Mount("block", image_serial, "/", fstype, readonly=True, layer="lower")]
    if upper_serial:
        mounts.append(Mount("block", upper_serial, "/", "ext4", layer="upper"))
    return mounts


def newcontainer(
    cid: str,
    mounts: list[Mount],
    process: Process | None = None,
    read_only: bool = False,
    sysctl: dict[str, str] | None = None,
    privileged: bool = False,
) -> dict:
    """NEWCONTAINER payload: the root and volumes as a list of mounts. A privileged
    container may open any device node and write /sys, and hides nothing of /proc."""
    out = {"id": cid, "mounts": [m.to_json() for m in mounts], "readOnly": read_only}
    if privileged:
        out["privileged"] = True
    if process is not None:
        out["process"] = process.to_json()
    if sysctl:
        out["sysctl"] = dict(sysctl)
    return out


def execcmd(cid: str, process: Process) -> dict:
    """EXECCMD payload."""
    return {"container": cid, "process": process.to_json()}


def winsize(cid: str, pid: str, rows: int, columns: int) -> dict:
    """WINSIZE payload."""
    return {"container": cid, "process": pid, "row": rows, "column": columns}


def signalprocess(cid: str, pid: str, signal: int) -> dict:
    """SIGNALPROCESS payload."""
    return {"container": cid, "process": pid, "signal": int(signal)}


def killcontainer(cid: str, signal: int) -> dict:
    """KILLCONTAINER payload."""
    return {"container": cid, "signal": int(signal)}


def writefile_payload(cid: str, path: str, data: bytes, mode: int | None = None) -> bytes:
    """WRITEFILE payload: a JSON object immediately followed by the raw bytes."""
    head = {"container": cid, "path": path}
    if mode is not None:
        head["mode"] = mode
    return json_payload(head) + data


def setupinterface(
    device: str, addresses: list[tuple[str, int]], mtu: int = 0, new_name: str = ""
) -> dict:
    """SETUPINTERFACE payload; device is a name or MAC, addresses are (ip, prefix length)."""
    out = {
        "device": device,
        "ipAddresses": [{"ipAddress": ip, "netMask": str(plen)} for ip, plen in addresses],
    }
    if new_name:
        out["newName"] = new_name
    if mtu:
        out["mtu"] = mtu
    return out


def setuproute(routes: list[dict]) -> dict:
    """SETUPROUTE payload; each route is {dest, gateway?, device}."""
    return {"routes": routes}


def ps(cid: str) -> dict:
    """PS payload."""
    return {"container": cid}


def sync(cid: str | None = None) -> dict:
    """SYNC payload: the whole guest, or one container's filesystems."""
    return {} if cid is None else {"container": cid}


def statpath(cid: str, path: str) -> dict:
    """STATPATH payload."""
    return {"container": cid, "path": path}


def archiveout(cid: str, job: str, path: str, seq: int, changes: bool = False) -> dict:
    """ARCHIVEOUT payload: a tar of path (or of the container's changes) on seq."""
    return {"container": cid, "id": job, "path": path, "seq": seq, "changes": changes}


def archivein(cid: str, job: str, path: str, seq: int, no_overwrite_dir_non_dir=False) -> dict:
    """ARCHIVEIN payload: a tar streamed on seq is extracted under path."""
    return {
        "container": cid,
        "id": job,
        "path": path,
        "seq": seq,
        "noOverwriteDirNonDir": no_overwrite_dir_non_dir,
    }


# -- answers and events ----------------------------------------------------------------


@dataclass(frozen=True)
class ErrorInfo:
    """An ERROR answer: the guest's message and the optional exit code and errno."""

    message: str
    exit_code: int | None = None
    errno: int | None = None


def decode_error(payload: bytes) -> ErrorInfo:
    """Decode an ERROR payload; text that is not the JSON object is kept as the message."""
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("message"), str):
        return ErrorInfo(payload.decode(errors="replace") or "unknown agent error")
    code, errno = obj.get("exitCode"), obj.get("errno")
    return ErrorInfo(
        obj["message"],
        code if isinstance(code, int) else None,
        errno if isinstance(errno, int) else None,
    )


@dataclass(frozen=True)
class Event:
    """A PROCESSASYNCEVENT: a process (or archive transfer) finished."""

    container: str
    process: str
    status: int
    error: str = ""
    oom_killed: bool = False  # the OOM killer killed a process of the container meanwhile


def decode_event(payload: bytes) -> Event:
    """Decode a PROCESSASYNCEVENT payload; ProtocolError when malformed."""
    try:
        ev = json.loads(payload)
        oom = ev.get("oomKilled", False)
        if not isinstance(oom, bool):
            raise TypeError(f"oomKilled is {type(oom).__name__}, not a boolean")
        return Event(
            str(ev["container"]),
            str(ev["process"]),
            int(ev["status"]),
            str(ev.get("error", "")),
            oom,
        )
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise ProtocolError(f"malformed process event: {payload[:200]!r}") from exc


@dataclass(frozen=True)
class PathStat:
    """STATPATH / ARCHIVEOUT answer: lstat of a path in a container."""

    name: str
    size: int
    mode: int  # st_mode
    mtime: float  # unix seconds
    link_target: str = ""  # the resolved path when the path is a symlink

    @classmethod
    def from_json(cls, obj: dict) -> PathStat:
        """From the ACK payload."""
        return cls(obj["name"], obj["size"], obj["mode"], obj["mtime"], obj.get("linkTarget") or "")

    @property
    def is_dir(self) -> bool:
        """True for a directory."""
        return stat.S_ISDIR(self.mode)


@dataclass(frozen=True)
class ProcessInfo:
    """One process of a PS answer."""

    pid: int
    ppid: int
    uid: int
    gid: int
    state: str
    tty: str  # "pts/0", or "" without one
    start_time: float  # unix seconds
    cpu_time_ms: int
    rss: int  # bytes
    vsz: int  # bytes
    args: list[str]

    @classmethod
    def from_json(cls, obj: dict) -> ProcessInfo:
        """From one item of the PS answer."""
        return cls(
            obj["pid"],
            obj["ppid"],
            obj["uid"],
            obj["gid"],
            obj["state"],
            obj["tty"],
            obj["startTime"],
            obj["cpuTime"],
            obj["rss"],
            obj["vsz"],
            list(obj["args"]),
        )
