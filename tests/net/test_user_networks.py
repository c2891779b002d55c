"""User-defined networks with real VMs, driven by the real docker CLI and docker-compose, all
inside the test's own network namespace."""

from __future__ import annotations

import json
import signal
import sqlite3
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import NGINX
from .test_network import PAGE, _get, _inspect, _ok

pytestmark = pytest.mark.vm


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def _docker(netd, *args: str, **kw) -> str:
    return _ok(netd.docker(*args, **kw))


def _net_inspect(netd, name: str) -> dict:
    return json.loads(_docker(netd, "network", "inspect", name))[0]


def _host_state(netd) -> dict:
    """What networks leave on the host: bridges, taps, addresses, rules, records."""
    links = netd.inside("ip", "-o", "link").stdout.decode()
    names = [w.rstrip(":").split("@")[0] for w in links.split() if w[:3] in ("hyb", "hyt")]
    addrs = netd.inside("ip", "-o", "-4", "addr").stdout.decode()
    nat = netd.inside("iptables", "-t", "nat", "-S").stdout.decode()
    flt = netd.inside("iptables", "-t", "filter", "-S").stdout.decode()
    with sqlite3.connect(netd.root / "network.db") as db:
        nets = sorted(r[0] for r in db.execute("SELECT name FROM networks"))
        endpoints = db.execute("SELECT owner FROM endpoints").fetchall()
        ports = db.execute("SELECT owner FROM published_ports").fetchall()
    return {
        "links": sorted(names),
        "addresses": [line for line in addrs.splitlines() if " hyb" in line],
        "rules": [r for r in (nat + flt).splitlines() if "hyb" in r or "DNAT --to" in r],
        "networks": nets,
        "endpoints": endpoints,
        "ports": ports,
    }


CLEAN = {
    "links": [],
    "addresses": [],
    "rules": [],
    "networks": ["bridge", "none"],
    "endpoints": [],
    "ports": [],
}


def _wait_clean(netd, timeout: float = 30) -> dict:
    deadline = time.time() + timeout
    while (state := _host_state(netd)) != CLEAN and time.time() < deadline:
        time.sleep(0.5)
    return state


def test_docker_cli_networks_names_nics_isolation_and_restart(netd):
    """docker network create/ls/inspect/connect/rm; a container on two networks (eth0, eth1,
    the default route via the first) reaches each network's containers by name and alias,
    never a container of another network; networks survive hyperd's kill -9."""
    u = _uid()
    front, back = f"front-{u}", f"back-{u}"
    web, db, client, lone = (f"{n}-{u}" for n in ("web", "db", "client", "lone"))
    fid = _docker(netd, "network", "create", "--label", "tier=front", front).strip()
    _docker(netd, "network", "create", "--subnet", "10.77.0.0/24", "--gateway", "10.77.0.254", back)
    listed = _docker(netd, "network", "ls", "--filter", "label=tier=front", "-q").split()
    assert listed == [fid[:12]]
    assert {"bridge", "none", front, back} <= set(
        _docker(netd, "network", "ls", "--format", "{{.Name}}").split()
    )
    info = _net_inspect(netd, back)
    assert info["IPAM"]["Config"] == [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.254"}]
    assert info["Driver"] == "bridge" and info["Containers"] == {}

    _docker(netd, "run", "-d", "--name", web, "--network", front, "--network-alias", "www", NGINX)
    _docker(netd, "run", "-d", "--name", db, "--network", back, NGINX)
    _docker(netd, "run", "-d", "--name", lone, NGINX)  # the default bridge
    script = (
        "ls /sys/class/net; ip route show default; "
        f"wget -qO- http://www/; wget -qO- http://{db}/; "
        f"wget -T 3 -qO- http://{_inspect(netd, lone)['NetworkSettings']['IPAddress']}/ "
        "|| echo isolated"
    )
    _docker(netd, "create", "--name", client, "--network", front, NGINX, "sh", "-c", script)
    _docker(netd, "network", "connect", back, client)  # created: joins at its start
    _docker(netd, "start", client)
    assert _docker(netd, "wait", client).strip() == "0"
    out = _docker(netd, "logs", client)
    front_gw = _net_inspect(netd, front)["IPAM"]["Config"][0]["Gateway"]
    assert out.split()[:3] == ["eth0", "eth1", "lo"]
    assert f"default via {front_gw} dev eth0" in out
    assert out.count(PAGE.decode()) == 2  # www on front, db on back, by name
    assert out.rstrip().endswith("isolated")  # the default bridge is another network

    # a running container: a NIC hot-plugged, then unplugged
    _docker(netd, "network", "connect", "--alias", "web2", back, web)
    nets = _inspect(netd, web)["NetworkSettings"]["Networks"]
    assert list(nets) == [front, back] and nets[back]["IPAddress"].startswith("10.77.0.")
    out = _docker(netd, "exec", web, "sh", "-c", f"ls /sys/class/net; wget -qO- http://{db}/")
    assert out.split()[:3] == ["eth0", "eth1", "lo"] and PAGE.decode() in out
    out = _docker(netd, "exec", db, "wget", "-qO-", "http://web2/")  # db sees web's alias
    assert PAGE.decode() in out
    _docker(netd, "network", "disconnect", back, web)
    script = f"ls /sys/class/net; grep -c {db} /etc/hosts || true"
    out = _docker(netd, "exec", web, "sh", "-c", script)
    assert out.split() == ["eth0", "lo", "0"]

    nets = _inspect(netd, web)["NetworkSettings"]["Networks"]
    assert list(nets) == [front] and nets[front]["Aliases"] == ["www"]
    members = _net_inspect(netd, front)["Containers"]
    assert [m["Name"] for m in members.values()] == [web]
    assert members[_inspect(netd, web)["Id"]]["IPv4Address"].startswith(nets[front]["IPAddress"])
    res = netd.docker("network", "rm", front)
    assert res.returncode != 0 and b"active endpoints" in res.stderr

    netd.kill_hyperd(signal.SIGKILL)
    netd.relaunch()
    assert _inspect(netd, web)["State"]["Running"]
    out = _ok(netd.hyper("run", "--rm", "--network", front, NGINX, "wget", "-qO-", "http://www/"))
    assert PAGE.decode() in out
    _docker(netd, "rm", "-f", web, db, client, lone)
    _docker(netd, "network", "rm", front, back)
    assert _wait_clean(netd) == CLEAN


COMPOSE = """\
version: "3.7"
services:
  web:
    image: {nginx}
    ports:
      - "8080:80"
  client:
    image: busybox
    command: ["sh", "-c", "while true; do wget -qO- http://web/ && sleep 1 || sleep 1; done"]
"""


def test_docker_compose_two_services(netd):
    """docker-compose up -d: web answers on 127.0.0.1:8080, client fetches it by service
    name; ps lists both Up; down leaves nothing behind."""
    project = f"hc{_uid()}"
    compose = netd.workdir / f"{project}.yml"
    compose.write_text(textwrap.dedent(COMPOSE.format(nginx=NGINX)))
    args = ["-p", project, "-f", str(compose)]
    _ok(netd.docker(*args, "up", "-d", compose=True, timeout=600))
    try:
        assert PAGE in _get(netd, "http://127.0.0.1:8080/")
        ps = _ok(netd.docker(*args, "ps", compose=True))
        assert ps.count(" Up ") == 2, ps
        deadline = time.time() + 60
        while PAGE.decode() not in (
            logs := _ok(netd.docker(*args, "logs", "client", compose=True))
        ):
            assert time.time() < deadline, logs
            time.sleep(1)
        assert f"{project}_default" in _docker(netd, "network", "ls", "--format", "{{.Name}}")
    finally:
        down = netd.docker(*args, "down", compose=True, timeout=300)
    _ok(down)
    assert (
        _docker(netd, "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}") == ""
    )
    assert _wait_clean(netd) == CLEAN


def test_hyper_cli_network_verbs(netd):
    """hyper network create/ls/inspect/connect/disconnect/rm/prune (no VM boots: connect
    and disconnect change what a created container joins at its start)."""
    u = _uid()
    a, b, name = f"a-{u}", f"b-{u}", f"c-{u}"
    aid = _ok(netd.hyper("network", "create", "--label", f"t={u}", a)).strip()
    _ok(netd.hyper("network", "create", "--subnet", "10.78.0.0/24", "--ip-range",
                   "10.78.0.64/26", "--internal", b))  # fmt: skip
    assert _ok(netd.hyper("network", "ls", "-q", "--filter", f"label=t={u}")).split() == [aid[:12]]
    table = _ok(netd.hyper("network", "ls")).splitlines()
    assert table[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert any(line.split()[1:] == [a, "bridge", "local"] for line in table)
    internal, config = _ok(
        netd.hyper("network", "inspect", "-f", "{{.Internal}} {{json .IPAM.Config}}", b)
    ).split(" ", 1)
    assert internal == "true"
    assert json.loads(config) == [
        {"Subnet": "10.78.0.0/24", "Gateway": "10.78.0.1", "IPRange": "10.78.0.64/26"}
    ]
    res = netd.hyper("network", "create", a)
    assert res.returncode == 125 and f"network with name {a} already exists".encode() in res.stderr
    res = netd.hyper("network", "create", "--subnet", "10.78.0.128/25", f"x-{u}")
    assert res.returncode == 125 and b"overlaps subnet 10.78.0.0/24" in res.stderr
    res = netd.hyper("network", "create", "-d", "macvlan", f"x-{u}")
    assert res.returncode == 125 and b"not supported" in res.stderr

    _ok(netd.hyper("create", "--name", name, "--network", a, NGINX))
    _ok(netd.hyper("network", "connect", "--alias", "db", "--ip", "10.78.0.9", b, name))
    nets = _inspect(netd, name)["NetworkSettings"]["Networks"]
    assert list(nets) == [a, b] and nets[b]["Aliases"] == ["db"]
    assert nets[b]["IPAMConfig"] == {"IPv4Address": "10.78.0.9"}
    res = netd.hyper("network", "connect", "--ip", "10.213.0.9", "bridge", name)
    assert res.returncode == 125 and b"user defined networks only" in res.stderr
    _ok(netd.hyper("network", "disconnect", a, name))
    assert list(_inspect(netd, name)["NetworkSettings"]["Networks"]) == [b]
    res = netd.hyper("network", "rm", "bridge")
    assert res.returncode == 125 and b"pre-defined" in res.stderr
    pruned = _ok(netd.hyper("network", "prune", "-f"))
    assert a in pruned and b not in pruned  # b is named by a container
    _ok(netd.hyper("rm", name))
    _ok(netd.hyper("network", "rm", b))
    res = netd.hyper("network", "inspect", b)
    assert res.returncode == 125 and f"network {b} not found".encode() in res.stderr


def test_aux_addresses_link_local_ips_and_an_endpoint_mac(netd):
    """`docker network create --aux-address` keeps that address from containers and
    `docker run --link-local-ip` adds the address to the NIC (the docker CLI); a MAC given
    in EndpointSettings on `network connect` (docker-py) is the NIC's, as inspect shows."""
    net, name, other = (f"{p}-{uuid.uuid4().hex[:6]}" for p in ("aux", "ll", "mac"))
    res = netd.docker(
        "network", "create", "--subnet", "10.91.0.0/24", "--aux-address", "r=10.91.0.2", net
    )
    assert res.returncode == 0, res.stderr
    client = netd.client()
    try:
        cfg = json.loads(netd.docker("network", "inspect", net).stdout)[0]["IPAM"]["Config"]
        assert cfg[0]["AuxiliaryAddresses"] == {"r": "10.91.0.2"}, cfg
        res = netd.docker(
            "run", "--name", name, "--network", net, "--link-local-ip", "169.254.8.8",
            "busybox", "sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}'",
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert res.stdout.decode().split() == ["10.91.0.3/24", "169.254.8.8/16"], res.stdout
        nets = json.loads(netd.docker("inspect", name).stdout)[0]["NetworkSettings"]["Networks"]
        assert nets[net]["IPAMConfig"]["LinkLocalIPs"] == ["169.254.8.8"], nets
        c = client.containers.create("busybox", "sleep 600", name=other)
        client.api.connect_container_to_network(c.id, net, mac_address="02:42:0a:5b:00:09")
        c.reload()
        assert c.attrs["NetworkSettings"]["Networks"][net]["MacAddress"] == "02:42:0a:5b:00:09"
        c.start()
        code, out = c.exec_run(["cat", "/sys/class/net/eth1/address"])
        assert (code, out) == (0, b"02:42:0a:5b:00:09\n"), out
    finally:
        netd.docker("rm", "-f", name, other)
        netd.docker("network", "rm", net)


def test_hosts_files_follow_a_burst_of_starts_and_a_removal(netd):
    """A running container's /etc/hosts gains every container started on its network after
    it, three of them started at once (each start rewrites it in the background; the last
    write must hold all three), and loses one that is removed."""
    net, uid = f"hosts-{_uid()}", _uid()
    names = [f"h{i}-{uid}" for i in range(4)]
    _docker(netd, "network", "create", net)

    def run(name: str) -> str:
        return _docker(
            netd, "run", "-d", "--name", name, "--network", net, "busybox", "sleep", "600"
        )

    try:
        run(names[0])
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(run, names[1:]))
        _wait_hosts(netd, names[0], present=names[1:])
        _docker(netd, "rm", "-f", names[2])
        _wait_hosts(netd, names[0], present=[names[1], names[3]], absent=[names[2]])
    finally:
        netd.docker("rm", "-f", *names)
        netd.docker("network", "rm", net)


def _wait_hosts(netd, ctr: str, present: list[str], absent: tuple | list = ()) -> None:
    """Wait (30 s at most) until ctr's /etc/hosts names every one of ``present`` and none
    of ``absent``."""
    deadline = time.time() + 30
    while True:
        text = _docker(netd, "exec", ctr, "cat", "/etc/hosts")
        words = text.split()
        if all(n in words for n in present) and not any(n in words for n in absent):
            return
        assert time.time() < deadline, text
        time.sleep(0.3)
