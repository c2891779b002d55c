"""Docker's -p/-P syntax (pure parsing: no sockets, no namespace needed)."""

from __future__ import annotations

import pytest

from hyperapi.portspec import PortBinding, parse_port_spec, parse_ports
from hyperd.errors import InvalidArgument

ANY = "0.0.0.0"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [("tcp", ANY, 0, 80)]),
        ("80/udp", [("udp", ANY, 0, 80)]),
        ("8080:80", [("tcp", ANY, 8080, 80)]),
        ("8080:80/tcp", [("tcp", ANY, 8080, 80)]),
        ("8080:80/UDP", [("udp", ANY, 8080, 80)]),
        ("127.0.0.1:8080:80", [("tcp", "127.0.0.1", 8080, 80)]),
        ("127.0.0.1:8080:80/udp", [("udp", "127.0.0.1", 8080, 80)]),
        ("127.0.0.1::80", [("tcp", "127.0.0.1", 0, 80)]),
        (":80", [("tcp", ANY, 0, 80)]),
        ("0:80", [("tcp", ANY, 0, 80)]),
        (
            "8000-8002:80-82",
            [("tcp", ANY, 8000, 80), ("tcp", ANY, 8001, 81), ("tcp", ANY, 8002, 82)],
        ),
        ("80-81", [("tcp", ANY, 0, 80), ("tcp", ANY, 0, 81)]),
        ("10.0.0.1:53-54:53-54/udp", [("udp", "10.0.0.1", 53, 53), ("udp", "10.0.0.1", 54, 54)]),
        ("65535:1", [("tcp", ANY, 65535, 1)]),
    ],
)
def test_valid_specs(spec, expected):
    assert parse_port_spec(spec) == [PortBinding(*e) for e in expected]


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "abc",
        "80/sctp",
        "80/",
        "0",
        "65536",
        "8080:0",
        "-1",
        "8080:80:90",
        "1.2.3:8080:80",
        "localhost:8080:80",
        "8000-8002:80-81",
        "8000-8010:80",
        "82-80",
        "[::1]:8080:80",
        "::1:8080:80",
        "8080:80/tcp/udp",
        "1.2.3.4:80",
        "99999:80",
    ],
)
def test_invalid_specs_name_the_spec(spec):
    with pytest.raises(InvalidArgument) as info:
        parse_port_spec(spec)
    assert repr(spec) in info.value.message


def test_publish_all_adds_exposed_ports_not_mapped():
    got = parse_ports(["8080:80"], publish_all=True, exposed=["80/tcp", "53/udp", "9000"])
    assert got == [
        PortBinding("tcp", ANY, 8080, 80),
        PortBinding("udp", ANY, 0, 53),
        PortBinding("tcp", ANY, 0, 9000),
    ]


def test_exposed_ignored_without_publish_all():
    assert parse_ports(["80"], exposed=["443/tcp"]) == [PortBinding("tcp", ANY, 0, 80)]


def test_bad_exposed_key():
    with pytest.raises(InvalidArgument, match="x/tcp"):
        parse_ports([], publish_all=True, exposed=["x/tcp"])


def test_same_host_port_twice_is_invalid():
    with pytest.raises(InvalidArgument, match="8080"):
        parse_ports(["8080:80", "8080:81"])
    # same number, different protocols: fine
    assert len(parse_ports(["8080:80", "8080:80/udp"])) == 2
