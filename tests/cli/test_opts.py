"""Parsing of Docker-style option values."""

from __future__ import annotations

import time

import pytest

from hyperapi.errors import InvalidArgument
from hyperctl import opts


@pytest.mark.parametrize(
    "text,expected",
    [
        ("1048576", 1048576),
        ("256m", 256 << 20),
        ("256M", 256 << 20),
        ("1g", 1 << 30),
        ("1.5g", 3 << 29),
        ("512k", 512 << 10),
        ("2GiB", 2 << 30),
        ("100b", 100),
        ("64mb", 64 << 20),
    ],
)
def test_memory(text, expected):
    assert opts.parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "-1m", "1x", "1.2.3g", "m"])
def test_memory_invalid(text):
    with pytest.raises(InvalidArgument):
        opts.parse_memory(text)


def test_cpus():
    assert opts.parse_cpus("1.5") == 1_500_000_000
    assert opts.parse_cpus("2") == 2_000_000_000
    assert opts.parse_cpus("0.001") == 1_000_000
    for bad in ("abc", "-1", "nan", "inf"):
        with pytest.raises(InvalidArgument):
            opts.parse_cpus(bad)


@pytest.mark.parametrize(
    "text,name,count",
    [
        ("no", "no", 0),
        ("always", "always", 0),
        ("unless-stopped", "unless-stopped", 0),
        ("on-failure", "on-failure", 0),
        ("on-failure:5", "on-failure", 5),
    ],
)
def test_restart(text, name, count):
    assert opts.parse_restart(text) == {"Name": name, "MaximumRetryCount": count}


@pytest.mark.parametrize("text", ["sometimes", "always:3", "on-failure:x", "on-failure:-1"])
def test_restart_invalid(text):
    with pytest.raises(InvalidArgument):
        opts.parse_restart(text)


def test_env():
    environ = {"HOME": "/root", "EMPTY": ""}
    assert opts.parse_env(["A=1", "B=", "HOME", "EMPTY", "UNSET", "C=x=y"], environ) == [
        "A=1",
        "B=",
        "HOME=/root",
        "EMPTY=",
        "C=x=y",
    ]
    with pytest.raises(InvalidArgument):
        opts.parse_env(["=x"], environ)


def test_env_file(tmp_path):
    f = tmp_path / "env"
    f.write_text("# comment\n\nA=1\n  B=two words\nHOME\nUNSET\n")
    assert opts.read_env_file(str(f), {"HOME": "/h"}) == ["A=1", "B=two words", "HOME=/h"]
    with pytest.raises(InvalidArgument):
        opts.read_env_file(str(tmp_path / "missing"))


def test_labels_and_filters():
    assert opts.parse_labels(["a=1", "b", "c=x=y"]) == {"a": "1", "b": "", "c": "x=y"}
    assert opts.parse_filters(["status=exited", "status=created", "name=web"]) == {
        "status": ["exited", "created"],
        "name": ["web"],
    }
    with pytest.raises(InvalidArgument):
        opts.parse_filters(["status"])


def test_parse_time_durations_and_unix_seconds():
    assert opts.parse_time("1700000000") == 1700000000.0
    assert opts.parse_time("1700000000.25") == 1700000000.25
    assert opts.parse_time("10m", now=1000.0) == 400.0
    assert opts.parse_time("1h30m", now=10000.0) == 10000.0 - 5400
    assert opts.parse_time("1.5s", now=10.0) == 8.5
    assert opts.parse_time("0") == 0.0  # unix 0, not a zero duration


def test_parse_time_rfc3339_and_shorter_forms(monkeypatch):
    assert opts.parse_time("2023-11-14T22:13:20Z") == 1_700_000_000.0
    assert opts.parse_time("2023-11-14T22:13:20.5Z") == 1_700_000_000.5
    assert opts.parse_time("2023-11-14T23:13:20+01:00") == 1_700_000_000.0
    assert opts.parse_time("2023-11-14T21:13:20-01:00") == 1_700_000_000.0
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert opts.parse_time("2023-11-14T22:13:20") == 1_700_000_000.0  # local time
        assert opts.parse_time("2023-11-14T22:13") == 1_700_000_000.0 - 20
        assert opts.parse_time("2023-11-14") == 1_699_920_000.0
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("text", ["soon", "", "10x", "2023-13-01", "2023-11-14T25:00", "-5m"])
def test_parse_time_rejects(text):
    with pytest.raises(InvalidArgument, match="--until"):
        opts.parse_time(text, "--until")


def test_split_repo_tag():
    assert opts.split_repo_tag("busybox") == ("busybox", None)
    assert opts.split_repo_tag("busybox:1.36") == ("busybox", "1.36")
    assert opts.split_repo_tag("localhost:5000/x") == ("localhost:5000/x", None)
    assert opts.split_repo_tag("localhost:5000/x:t") == ("localhost:5000/x", "t")
    assert opts.split_repo_tag("x@sha256:abc") == ("x@sha256:abc", None)


@pytest.mark.parametrize(
    "spec, key, binding",
    [
        ("8080:80", "80/tcp", {"HostIp": "", "HostPort": "8080"}),
        ("80", "80/tcp", {"HostIp": "", "HostPort": ""}),
        ("127.0.0.1:8081:81/udp", "81/udp", {"HostIp": "127.0.0.1", "HostPort": "8081"}),
        ("127.0.0.1::53/udp", "53/udp", {"HostIp": "127.0.0.1", "HostPort": ""}),
    ],
)
def test_parse_publish(spec, key, binding):
    exposed, bindings = opts.parse_publish([spec])
    assert exposed == {key: {}} and bindings == {key: [binding]}


def test_parse_publish_ranges():
    _, bindings = opts.parse_publish(["9000-9001:90-91"])
    assert bindings == {
        "90/tcp": [{"HostIp": "", "HostPort": "9000"}],
        "91/tcp": [{"HostIp": "", "HostPort": "9001"}],
    }


@pytest.mark.parametrize("spec", ["x:80", "70000", "1-3:5", "80/sctp", "a:b:c:d", "0"])
def test_parse_publish_rejects(spec):
    with pytest.raises(InvalidArgument, match="spec|range|port"):
        opts.parse_publish([spec])
