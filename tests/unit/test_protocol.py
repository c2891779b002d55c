"""Codec of the host<->guest protocol (hyperd/agent/protocol.py vs hyperstart/api.h)."""

import json
import re
from pathlib import Path

import pytest

from hyperd.agent import protocol as p

API_H = Path(__file__).resolve().parents[2] / "hyperstart" / "api.h"


def test_codes_match_api_h():
    text = API_H.read_text()
    in_c = {m[0]: int(m[1]) for m in re.findall(r"HYPER_([A-Z]+) = (\d+),", text)}
    assert in_c == {c.name: c.value for c in p.Code}


def test_constants_match_api_h():
    text = API_H.read_text()
    assert f"#define HYPER_API_VERSION {p.API_VERSION}\n" in text
    assert f'#define HYPER_CONTROL_PORT "{p.CONTROL_PORT}"' in text
    assert f'#define HYPER_STREAM_PORT  "{p.STREAM_PORT}"' in text
    assert f'#define HYPER_EXIT_ARG "{p.EXIT_ARG}"' in text


def test_control_frame_round_trip():
    frame = p.encode_control(p.Code.PING, b'{"a":1}')
    assert frame[:8] == bytes([0, 0, 0, 12, 0, 0, 0, 15])
    assert p.decode_control_header(frame[:8]) == (12, 7)
    assert frame[8:] == b'{"a":1}'


@pytest.mark.parametrize("length", [0, 7, p.MAX_CONTROL_FRAME + 1])
def test_control_header_rejects_bad_length(length):
    with pytest.raises(p.ProtocolError):
        p.decode_control_header(p.CONTROL_HEADER.pack(9, length))


def test_stream_frame_round_trip_and_eof():
    frame = p.encode_stream(2**40 + 5, b"hello")
    assert len(frame) == 17
    assert p.decode_stream_header(frame[:12]) == (2**40 + 5, 5)
    assert p.decode_stream_header(p.encode_stream(7)) == (7, 0)


def test_stream_frame_limits():
    with pytest.raises(ValueError):
        p.encode_stream(1, b"x" * (p.MAX_STREAM_DATA + 1))
    with pytest.raises(p.ProtocolError):
        p.decode_stream_header(p.STREAM_HEADER.pack(1, 11))


def test_process_payload_shape():
    proc = p.Process("init", ["sh", "-c", "x"], stdio=3, stderr=4, env={"A": "1"}, user="nobody")
    assert proc.to_json() == {
        "id": "init",
        "args": ["sh", "-c", "x"],
        "envs": [{"env": "A", "value": "1"}],
        "workdir": "/",
        "terminal": False,
        "stdio": 3,
        "stderr": 4,
        "user": "nobody",
    }
    tty = p.Process("t", ["sh"], stdio=5, stderr=6, terminal=True, rows=40, columns=100)
    assert tty.to_json()["stderr"] == 0
    assert (tty.to_json()["row"], tty.to_json()["column"]) == (40, 100)


def test_newcontainer_payload_carries_mounts():
    proc = p.Process("init", ["true"], stdio=1, stderr=2)
    vol = p.Mount("tmpfs", "", "/data", options="size=64m", populate=True)
    payload = p.newcontainer("c1", [*p.root_mounts("img0", "erofs", "rw0"), vol], proc)
    assert payload == {
        "id": "c1",
        "mounts": [
            {
                "type": "block",
                "source": "img0",
                "target": "/",
                "fstype": "erofs",
                "readonly": True,
                "layer": "lower",
            },
            {
                "type": "block",
                "source": "rw0",
                "target": "/",
                "fstype": "ext4",
                "readonly": False,
                "layer": "upper",
            },
            {
                "type": "tmpfs",
                "source": "",
                "target": "/data",
                "options": "size=64m",
                "readonly": False,
                "populate": True,
            },
        ],
        "readOnly": False,
        "process": proc.to_json(),
    }
    assert "image" not in payload and "rw" not in payload
    assert p.root_mounts("img", "ext4") == [
        p.Mount("block", "img", "/", "ext4", readonly=True, layer="lower")
    ]


def test_writefile_payload():
    raw = p.writefile_payload("c1", "/etc/x", b"\x00\x01data", mode=0o600)
    head, _, rest = raw.partition(b"}")
    assert json.loads(head + b"}") == {"container": "c1", "path": "/etc/x", "mode": 0o600}
    assert rest == b"\x00\x01data"


@pytest.mark.parametrize(
    "payload, expected",
    [
        (b'{"message":"no container x"}', p.ErrorInfo("no container x")),
        (
            b'{"message":"exec: \\"x\\": executable file not found in $PATH","exitCode":127}',
            p.ErrorInfo('exec: "x": executable file not found in $PATH', 127),
        ),
        (
            b'{"message":"stat /x: no such file or directory","errno":2}',
            p.ErrorInfo("stat /x: no such file or directory", None, 2),
        ),
        (b"plain text from an old agent", p.ErrorInfo("plain text from an old agent")),
        (b'{"message": 5}', p.ErrorInfo('{"message": 5}')),
        (b"", p.ErrorInfo("unknown agent error")),
    ],
    ids=["message", "exit-code", "errno", "text", "wrong-type", "empty"],
)
def test_decode_error(payload, expected):
    assert p.decode_error(payload) == expected


def test_new_codes_are_the_next_free_numbers():
    assert [p.Code.PS, p.Code.SYNC, p.Code.STATPATH, p.Code.ARCHIVEOUT, p.Code.ARCHIVEIN] == [
        26,
        27,
        28,
        29,
        30,
    ]
    # 3: namespaces, capabilities, seccomp; 4: oomKilled; 5: STARTPOD time and seed;
    # 6: the agent's binary exits at once given EXIT_ARG
    assert p.API_VERSION == 6


def test_startpod_payload():
    assert p.startpod("pod") == {"hostname": "pod", "dns": [], "dnsSearch": []}
    assert p.startpod("pod", ["8.8.8.8"], ["example.com"]) == {
        "hostname": "pod",
        "dns": ["8.8.8.8"],
        "dnsSearch": ["example.com"],
    }
    now = 1_700_000_000_123_456_789
    payload = p.startpod("pod", time_ns=now, seed=bytes([0, 1, 0xAB, 0xFF]))
    assert payload["time"] == now and payload["seed"] == "0001abff"
    wire = json.loads(p.json_payload(payload))
    assert wire["time"] == now and isinstance(wire["time"], int)
    assert p.startpod("pod", time_ns=0)["time"] == 0 and "seed" not in p.startpod("pod", time_ns=0)
    assert p.startpod("pod", seed=b"")["seed"] == ""


def test_startpod_seed_limit_matches_api_h():
    assert "at most 512 hex chars" in API_H.read_text()
    assert len(p.startpod("pod", seed=bytes(256))["seed"]) == 512
    with pytest.raises(ValueError):
        p.startpod("pod", seed=bytes(257))


def test_mount_payload_leaves_defaults_out():
    assert p.Mount("9p", "share", "/mnt", options="cache=loose", readonly=True).to_json() == {
        "type": "9p",
        "source": "share",
        "target": "/mnt",
        "options": "cache=loose",
        "readonly": True,
    }


def test_small_command_payloads():
    assert p.ps("c1") == {"container": "c1"}
    assert p.sync() == {}
    assert p.sync("c1") == {"container": "c1"}
    assert p.statpath("c1", "/etc") == {"container": "c1", "path": "/etc"}


def test_archive_payloads():
    assert p.archiveout("c1", "j1", "/etc", 7, changes=True) == {
        "container": "c1",
        "id": "j1",
        "path": "/etc",
        "seq": 7,
        "changes": True,
    }
    assert p.archivein("c1", "j2", "/srv", 8) == {
        "container": "c1",
        "id": "j2",
        "path": "/srv",
        "seq": 8,
        "noOverwriteDirNonDir": False,
    }


def test_path_stat_from_json():
    st = p.PathStat.from_json(
        {"name": "sh", "size": 7, "mode": 0o120777, "mtime": 1.5, "linkTarget": "/bin/busybox"}
    )
    assert st == p.PathStat("sh", 7, 0o120777, 1.5, "/bin/busybox")
    assert not st.is_dir
    root = p.PathStat.from_json({"name": "/", "size": 0, "mode": 0o40755, "mtime": 2.0})
    assert root.is_dir and root.link_target == ""


def test_process_info_from_json():
    obj = {
        "pid": 42,
        "ppid": 1,
        "uid": 1000,
        "gid": 50,
        "state": "S",
        "tty": "pts/0",
        "startTime": 1700000000.25,
        "cpuTime": 30,
        "rss": 4096,
        "vsz": 8192,
        "args": ["sleep", "10"],
    }
    assert p.ProcessInfo.from_json(obj) == p.ProcessInfo(
        42, 1, 1000, 50, "S", "pts/0", 1700000000.25, 30, 4096, 8192, ["sleep", "10"]
    )


def test_decode_event():
    ev = p.decode_event(b'{"container":"c","process":"j","event":"finished","status":0}')
    assert ev == p.Event("c", "j", 0)
    failed = p.decode_event(
        b'{"container":"c","process":"j","event":"finished","status":18,"error":"no"}'
    )
    assert (failed.status, failed.error, failed.oom_killed) == (18, "no", False)
    oom = p.decode_event(b'{"container":"c","process":"m","status":137,"oomKilled":true}')
    assert (oom.status, oom.oom_killed) == (137, True)
    for bad in (
        b"{}",
        b"not json",
        b"[1]",
        b'{"container":"c","process":"j","status":"x"}',
        b'{"container":"c","process":"j","status":137,"oomKilled":1}',
        b'{"container":"c","process":"j","status":137,"oomKilled":"yes"}',
    ):
        with pytest.raises(p.ProtocolError):
            p.decode_event(bad)
