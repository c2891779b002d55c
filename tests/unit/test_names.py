"""What a container resolves by name: one set of rules for /etc/hosts and embedded DNS."""

from __future__ import annotations

from hyperd.containers.hosts import dns_table, hosts_file, known_names
from hyperd.containers.model import Attachment, Container
from hyperd.containers.spec import ContainerConfig, HostSpec

FRONT, BACK = "n-front", "n-back"


def _c(name: str, cid: str, nets: dict[str, Attachment], hostname: str = "", **host) -> Container:
    return Container(
        id=cid * 64 if len(cid) == 1 else cid,
        name=name,
        created="2026-12-01T00:00:00Z",
        image="busybox",
        image_id="sha256:0",
        config=ContainerConfig(hostname=hostname or (cid * 12)[:12]),
        host=HostSpec(**host),
        cpus=1,
        memory=256 << 20,
        networks=nets,
    )


def _att(ip: str, network_id: str, aliases=(), links=()) -> Attachment:
    return Attachment(network_id, list(aliases), list(links), ip=ip, prefix=24)


def _world():
    """asker on front and back (a link to 'target' as 'bar' on front); target on front
    with alias 'db'; other on back only; stranger on a network asker is not on."""
    asker = _c(
        "asker",
        "a",
        {
            FRONT: _att("10.1.0.2", "f", links=["target:bar"]),
            BACK: _att("10.2.0.2", "b"),
        },
        hostname="Asker-Host",
    )
    target = _c("target", "b", {FRONT: _att("10.1.0.3", "f", aliases=["db"])}, hostname="tgt")
    other = _c("other", "c", {BACK: _att("10.2.0.4", "b", aliases=["db"])})
    stranger = _c("stranger", "d", {"n-else": _att("10.3.0.5", "e")})
    return asker, [asker, target, other, stranger]


def test_peers_by_name_alias_short_id_and_hostname_per_network():
    asker, running = _world()
    table = dns_table(asker, running, FRONT)
    assert table["target"] == ["10.1.0.3"]
    assert table["tgt"] == ["10.1.0.3"]  # its hostname
    assert table["b" * 12] == ["10.1.0.3"]  # its short ID
    assert table["other"] == ["10.2.0.4"]  # on back, which asker shares
    assert "stranger" not in table and "d" * 12 not in table  # no shared network
    assert table["db"] == ["10.1.0.3", "10.2.0.4"]  # the asking network's first
    assert dns_table(asker, running, BACK)["db"] == ["10.2.0.4", "10.1.0.3"]


def test_own_names_and_links_case_folded():
    asker, running = _world()
    table = dns_table(asker, running, FRONT)
    assert table["asker"] == ["10.1.0.2", "10.2.0.2"]
    assert table["asker-host"] == ["10.1.0.2", "10.2.0.2"]  # lower case keys
    assert table["bar"] == ["10.1.0.3"]  # asker's link alias
    target = running[1]
    assert "bar" not in dns_table(target, running, FRONT)  # the link is asker's only


def test_a_link_to_a_container_not_running_resolves_once_it_runs():
    asker, running = _world()
    without = [c for c in running if c.name != "target"]
    assert "bar" not in dns_table(asker, without, FRONT)
    assert dns_table(asker, running, FRONT)["bar"] == ["10.1.0.3"]


def test_legacy_links_and_extra_hosts_in_hosts_file_not_in_dns():
    web = _c("web", "e", {"bridge": _att("10.213.0.9", "def")})
    cli = _c(
        "cli",
        "f",
        {"bridge": _att("10.213.0.8", "def")},
        links=["web:www"],
        extra_hosts=["gw:host-gateway", "fixed:1.2.3.4"],
    )
    text = hosts_file(cli, [cli, web], "10.213.0.1").decode().splitlines()
    assert text[:2] == ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    assert "10.213.0.8\tffffffffffff cli" in text  # hostname first, then its DNS names
    assert f"10.213.0.9\tweb {'e' * 12}" in text
    assert "10.213.0.9\twww" in text
    assert text[-2:] == ["10.213.0.1\tgw", "1.2.3.4\tfixed"]
    table = dns_table(cli, [cli, web], "bridge")
    assert table["www"] == ["10.213.0.9"] and "fixed" not in table and "gw" not in table


def test_no_network_means_loopback_hostname_only():
    alone = _c("alone", "9", {}, hostname="solo")
    assert hosts_file(alone, [alone]).decode().splitlines()[-1] == "127.0.1.1\tsolo"
    assert known_names(alone, [alone]) == []
