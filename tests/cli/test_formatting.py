"""ps / images tables, Go-like templates, human times and sizes."""

from __future__ import annotations

import json

import pytest

from hyperapi.errors import InvalidArgument
from hyperctl import formatting as f

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    "secs,text",
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (5, "5 seconds"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (3599, "59 minutes"),
        (3600, "About an hour"),
        (2 * 3600, "2 hours"),
        (47 * 3600, "47 hours"),
        (3 * 86400, "3 days"),
        (15 * 86400, "2 weeks"),
        (90 * 86400, "3 months"),
        (3 * 365 * 86400, "3 years"),
    ],
)
def test_human_duration(secs, text):
    assert f.human_duration(secs) == text


def test_ago_and_sizes():
    assert f.ago(NOW - 5, NOW) == "5 seconds ago"
    assert f.ago(NOW - 90, NOW) == "About a minute ago"
    assert f.human_size(2_130_000) == "2.13MB"
    assert f.human_size(999) == "999B"
    assert f.human_size(77_900_000) == "77.9MB"


def test_parse_timestamp():
    assert f.parse_timestamp(12) == 12.0
    assert f.parse_timestamp("2023-11-14T22:13:20Z") == 1_700_000_000.0
    assert f.parse_timestamp("2023-11-14T22:13:20.5+00:00") == 1_700_000_000.5
    assert f.parse_timestamp("2023-11-14T22:13:20.123456789Z") == pytest.approx(
        1_700_000_000.123456789
    )
    assert f.parse_timestamp("0001-01-01T00:00:00Z") is None


def test_ellipsis_and_quote():
    assert f.ellipsis("sh -c 'sleep 100'", 20) == "sh -c 'sleep 100'"
    assert f.ellipsis("sh -c 'echo out; echo err'", 20) == "sh -c 'echo out; ec…"
    assert len(f.ellipsis("x" * 50, 20)) == 20
    assert f.go_quote('a "b"') == '"a \\"b\\""'


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
    out = f.format_containers([_container(), _container(Names=["/db"], Command="sh")], now=NOW)
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
    assert f.format_containers([c], quiet=True) == "0123456789ab"
    assert f.format_containers([c], quiet=True, trunc=False) == c["Id"]
    row = json.loads(f.format_containers([c], fmt="json", now=NOW))
    assert row["ID"] == "0123456789ab"
    assert row["Names"] == "web"
    assert row["Labels"] == "a=1,b=2"
    assert row["Command"] == '"sh -c \'echo out; ec…"'


def test_ps_templates():
    c = _container()
    assert f.format_containers([c], fmt="{{.ID}}") == "0123456789ab"
    assert f.format_containers([c], fmt="{{.Names}}: {{.State}} ({{.Status}})") == (
        "web: running (Up 3 seconds)"
    )
    out = f.format_containers([c], fmt="table {{.ID}}\\t{{.Names}}\\t{{.Labels}}")
    assert out.splitlines() == ["CONTAINER ID   NAMES   LABELS", "0123456789ab   web     a=1,b=2"]
    assert f.format_containers([], fmt="table {{.Names}}") == "NAMES"
    assert f.format_containers([c], fmt="{{json .Names}}") == '"web"'
    assert f.format_containers([c], fmt="{{upper .State}}") == "RUNNING"
    assert f.format_containers([c], fmt="{{.CreatedAt}}").startswith("2023-11-14 ")
    with pytest.raises(InvalidArgument):
        f.format_containers([c], fmt="{{.Nope}}")
    with pytest.raises(InvalidArgument):
        f.format_containers([c], fmt="{{nofunc .ID}}")


def test_template_nested_and_missing():
    obj = {"State": {"Status": "exited", "ExitCode": 3, "Running": False}, "Config": {"Env": []}}
    assert f.Template("{{.State.Status}} {{.State.ExitCode}}").render(obj) == "exited 3"
    assert f.Template("{{.State.Running}}").render(obj) == "false"
    assert f.Template("{{json .Config}}").render(obj) == '{"Env":[]}'
    assert f.Template("{{.Nope}}").render(obj) == "<no value>"
    assert f.Template('{{join .L ","}}').render({"L": ["a", "b"]}) == "a,b"


def test_render_table():
    assert f.render_table([["A", "BB", "C"], ["aaaa", "b", "c"]]) == "A      BB   C\naaaa   b    c"


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
    lines = f.format_images(imgs, now=NOW).splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split() == ["busybox", "latest", "c79c141297b3", "3", "days", "ago", "2.13MB"]
    assert lines[2].split()[:2] == ["localhost:5000/bb", "v1"]
    assert lines[3].split()[:3] == ["<none>", "<none>", "111111111111"]
    d = f.format_images(imgs, digests=True, now=NOW).splitlines()
    assert "DIGEST" in d[0] and "sha256:abc" in d[1] and "<none>" in d[2]
    assert f.format_images(imgs, quiet=True) == "c79c141297b3\n111111111111"
    assert json.loads(f.format_images(imgs, fmt="json").splitlines()[0])["Tag"] == "latest"
