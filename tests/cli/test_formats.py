"""Each command's rows: ps, images, stats, system df, events, as the docker CLI prints them."""

from __future__ import annotations

import json

import pytest

from hyperapi.errors import InvalidArgument
from hyperctl.formats.containers import format_containers
from hyperctl.formats.images import format_images
from hyperctl.formats.stats import format_stats, stats_row
from hyperctl.formats.system import event_context, event_line, format_df, format_df_verbose

NOW = 1_700_000_000.0


def _container(**kw):
    c = {
        "Id": "0123456789abcdef" * 4,
        "Names": ["/web"],
        "Image": "busybox",
        "Command": "sh -c 'echo out; echo err'",
        "Created": NOW - 5,
        "State": "running",
        "Status": "Up 3 seconds",
        "Ports": [],
        "Labels": {"b": "2", "a": "1"},
    }
    c.update(kw)
    return c


def test_ps_table():
    out = format_containers([_container(), _container(Names=["/db"], Command="sh")], now=NOW)
    lines = out.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS"] + [
        "PORTS",
        "NAMES",
    ]
    assert lines[1].startswith('0123456789ab   busybox   "sh -c \'echo out; ec…"   5 seconds ago')
    assert lines[1].endswith("web")
    assert lines[2].endswith("db")
    # columns aligned: NAMES starts at the same offset everywhere
    assert lines[0].index("NAMES") == lines[1].index("web") == lines[2].index("db")


def test_ps_quiet_notrunc_json():
    c = _container()
    assert format_containers([c], quiet=True) == "0123456789ab"
    assert format_containers([c], quiet=True, trunc=False) == c["Id"]
    row = json.loads(format_containers([c], fmt="json", now=NOW))
    assert row["ID"] == "0123456789ab"
    assert row["Names"] == "web"
    assert row["Labels"] == "a=1,b=2"
    assert row["Command"] == '"sh -c \'echo out; ec…"'


def test_ps_templates():
    c = _container()
    assert format_containers([c], fmt="{{.ID}}") == "0123456789ab"
    assert format_containers([c], fmt="{{.Names}}: {{.State}} ({{.Status}})") == (
        "web: running (Up 3 seconds)"
    )
    out = format_containers([c], fmt="table {{.ID}}\\t{{.Names}}\\t{{.Labels}}")
    assert out.splitlines() == [
        "CONTAINER ID   NAMES     LABELS",
        "0123456789ab   web       a=1,b=2",
    ]
    assert format_containers([], fmt="table {{.Names}}") == "NAMES"
    assert format_containers([c], fmt="{{json .Names}}") == '"web"'
    assert format_containers([c], fmt="{{upper .State}}") == "RUNNING"
    assert format_containers([c], fmt="{{.CreatedAt}}").startswith("2023-11-14 ")
    with pytest.raises(InvalidArgument):
        format_containers([c], fmt="{{.Nope}}")
    with pytest.raises(InvalidArgument):
        format_containers([c], fmt="{{nofunc .ID}}")


def test_images_table():
    imgs = [
        {
            "Id": "sha256:" + "c79c141297b3" + "0" * 52,
            "RepoTags": ["busybox:latest", "localhost:5000/bb:v1"],
            "RepoDigests": ["busybox@sha256:abc"],
            "Created": NOW - 3 * 86400,
            "Size": 2_130_000,
        },
        {"Id": "sha256:" + "1" * 64, "RepoTags": [], "Created": NOW, "Size": 5},
    ]
    lines = format_images(imgs, now=NOW).splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split() == ["busybox", "latest", "c79c141297b3", "3", "days", "ago", "2.13MB"]
    assert lines[2].split()[:2] == ["localhost:5000/bb", "v1"]
    assert lines[3].split()[:3] == ["<none>", "<none>", "111111111111"]
    d = format_images(imgs, digests=True, now=NOW).splitlines()
    assert "DIGEST" in d[0] and "sha256:abc" in d[1] and "<none>" in d[2]
    assert format_images(imgs, quiet=True) == "c79c141297b3\n111111111111"
    assert json.loads(format_images(imgs, fmt="json").splitlines()[0])["Tag"] == "latest"


SAMPLE = {
    "id": "55902ecd54d5" + "0" * 52,
    "name": "/bench",
    "pids_stats": {},
    "cpu_stats": {
        "cpu_usage": {"total_usage": 6_680_082_000},
        "system_cpu_usage": 10_323_010_000_000,
        "online_cpus": 2,
    },
    "precpu_stats": {
        "cpu_usage": {"total_usage": 6_676_090_000},
        "system_cpu_usage": 10_320_990_000_000,
        "online_cpus": 2,
    },
    "memory_stats": {"usage": 126_861_312, "limit": 268_435_456, "stats": {}},
    "blkio_stats": {
        "io_service_bytes_recursive": [
            {"major": 254, "minor": 0, "op": "read", "value": 1_741_824},
            {"major": 254, "minor": 0, "op": "write", "value": 67_174_400},
        ]
    },
    "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 2_500_000}},
}


def test_stats_row_computes_dockers_figures():
    row = stats_row("bench", SAMPLE)
    assert row == {
        "Container": "bench",
        "ID": "55902ecd54d5",
        "Name": "bench",
        "CPUPerc": "0.40%",  # 3.992 ms of CPU over 2.02 s of 2 CPUs' system time
        "MemUsage": "121MiB / 256MiB",
        "MemPerc": "47.26%",
        "NetIO": "1.5kB / 2.5MB",
        "BlockIO": "1.74MB / 67.2MB",
        "PIDs": "0",
    }
    inactive = {
        **SAMPLE,
        "memory_stats": {**SAMPLE["memory_stats"], "stats": {"inactive_file": 1 << 20}},
    }
    assert stats_row("bench", inactive)["MemUsage"] == "120MiB / 256MiB"
    assert stats_row("x", SAMPLE, trunc=False)["ID"] == SAMPLE["id"]


def test_stats_without_a_sample_is_dashes_and_the_table_is_dockers():
    row = stats_row("stopped", None, ident="abcdef0123456789")
    assert (row["ID"], row["CPUPerc"], row["MemUsage"], row["PIDs"]) == (
        "abcdef012345",
        "--",
        "-- / --",
        "--",
    )
    lines = format_stats([stats_row("bench", SAMPLE)]).splitlines()
    assert lines == [
        "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O         "
        "BLOCK I/O         PIDS",
        "55902ecd54d5   bench     0.40%     121MiB / 256MiB     47.26%    1.5kB / 2.5MB   "
        "1.74MB / 67.2MB   0",
    ]
    assert format_stats([stats_row("bench", SAMPLE)], "{{.Container}}: {{.CPUPerc}}") == (
        "bench: 0.40%"
    )
    assert json.loads(format_stats([row], "json"))["BlockIO"] == "--"


DF = {
    "LayersSize": 2_140_000,
    "Images": [
        {
            "Id": "sha256:c5287235f01c" + "0" * 52,
            "RepoTags": ["busybox:latest"],
            "Created": int(NOW - 240),
            "Size": 2_140_000,
            "SharedSize": 0,
            "Containers": 1,
        }
    ],
    "Containers": [
        {
            "Id": "55902ecd54d5" + "0" * 52,
            "Names": ["/bench"],
            "Image": "busybox",
            "Command": "sleep 100000",
            "Created": int(NOW - 240),
            "State": "running",
            "Status": "Up 3 minutes",
            "SizeRw": 2_327_000,
            "Mounts": [],
        },
        {
            "Id": "66902ecd54d5" + "0" * 52,
            "Names": ["/old"],
            "Image": "busybox",
            "Command": "true",
            "Created": int(NOW - 240),
            "State": "exited",
            "Status": "Exited (0) 3 minutes ago",
            "SizeRw": 1_000_000,
            "Mounts": [{"Type": "volume", "Name": "v1"}],
        },
    ],
    "Volumes": [{"Name": "v1", "UsageData": {"Size": 4096, "RefCount": 0}}],
    "BuildCache": [],
}


def test_system_df_summary():
    assert format_df(DF).splitlines() == [
        "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE",
        "Images          1         1         2.14MB    0B (0%)",
        "Containers      2         1         3.327MB   1MB (30%)",
        "Local Volumes   1         0         4.096kB   4.096kB (100%)",
        "Build Cache     0         0         0B        0B",
    ]
    rows = [json.loads(line) for line in format_df(DF, "json").splitlines()]
    assert rows[1] == {
        "Active": "1",
        "Reclaimable": "1MB (30%)",
        "Size": "3.327MB",
        "TotalCount": "2",
        "Type": "Containers",
    }


def test_system_df_verbose_has_every_section():
    out = format_df_verbose(DF, now=NOW)
    assert out.split("\n\n")[0] == "Images space usage:"
    lines = out.splitlines()
    at = {line: i for i, line in enumerate(lines) if line.endswith(":") or "usage" in line}
    assert list(at) == [
        "Images space usage:",
        "Containers space usage:",
        "Local Volumes space usage:",
        "Build cache usage: 0B",
    ]
    assert lines[at["Images space usage:"] + 3].split() == (
        ["busybox", "latest", "c5287235f01c", "4", "minutes", "ago", "2.14MB", "0B", "2.14MB", "1"]
    )
    bench = lines[at["Containers space usage:"] + 3]
    assert bench.split()[:4] == ["55902ecd54d5", "busybox", '"sleep', '100000"']
    assert lines[at["Containers space usage:"] + 4].split()[3:5] == ["1", "1MB"]  # a volume
    assert lines[at["Local Volumes space usage:"] + 2 : at["Local Volumes space usage:"] + 4] == [
        "VOLUME NAME   LINKS     SIZE",
        "v1            0         4.1kB",
    ]
    assert lines[-1].split()[:2] == ["CACHE", "ID"]


EVENT = {
    "Type": "container",
    "Action": "start",
    "Actor": {"ID": "abc", "Attributes": {"name": "web", "image": "busybox"}},
    "scope": "local",
    "time": 1_700_000_000,
    "timeNano": 1_700_000_000_123_456_789,
    "status": "start",
    "id": "abc",
    "from": "busybox",
}


def test_event_line(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    try:
        assert event_line(EVENT) == (
            "2023-11-14T22:13:20.123456789Z container start abc (image=busybox, name=web)"
        )
        monkeypatch.setenv("TZ", "CET-1")
        time.tzset()
        assert event_line(EVENT).startswith("2023-11-14T23:13:20.123456789+01:00 container")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    no_attrs = {**EVENT, "Actor": {"ID": "x", "Attributes": {}}, "timeNano": 0}
    assert event_line(no_attrs) == "container start x"


def test_event_templates_see_gos_field_names():
    ctx = event_context(EVENT)
    assert (ctx["Status"], ctx["ID"], ctx["From"], ctx["Scope"]) == (
        "start",
        "abc",
        "busybox",
        "local",
    )
    assert ctx["Time"] == 1_700_000_000 and ctx["Actor"]["Attributes"]["name"] == "web"


def test_bad_template_is_a_usage_error():
    with pytest.raises(InvalidArgument):
        format_stats([stats_row("bench", SAMPLE)], "{{.Nope}}")
