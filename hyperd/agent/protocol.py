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
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass, field

API_VERSION = 1

CONTROL_PORT = "sh.hyper.channel.0"
STREAM_PORT = "sh.hyper.channel.1"

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
        return out


def startpod(hostname: str, dns: list[str] | None = None, search: list[str] | None = None):
    """STARTPOD payload."""
    return {"hostname": hostname, "dns": dns or [], "dnsSearch": search or []}


def newcontainer(
    cid: str,
    image_serial: str,
    fstype: str,
    rw_serial: str = "",
    process: Process | None = None,
    read_only: bool = False,
    sysctl: dict[str, str] | None = None,
) -> dict:
    """NEWCONTAINER payload: root from the image disk plus an optional writable disk."""
    out = {"id": cid, "image": image_serial, "fstype": fstype, "readOnly": read_only}
    if rw_serial:
        out["rw"] = rw_serial
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
