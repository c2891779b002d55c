"""Docker's request bodies decoded into typed specs: every bad field is a 400 naming it."""

from __future__ import annotations

import pytest

from hyperd.api import decode
from hyperd.containers import spec as s
from hyperd.errors import InvalidArgument

BASE = {"Image": "busybox", "Cmd": ["true"]}


def _create(**extra):
    return decode.create_spec({**BASE, **extra})


def _host(**hc):
    return decode.create_spec({**BASE, "HostConfig": hc}).host


@pytest.mark.parametrize(
    "body, field",
    [
        ({"Labels": ["a=b"]}, "Labels"),
        ({"Labels": {"a": 1}}, "Labels"),
        ({"WorkingDir": 5}, "WorkingDir"),
        ({"WorkingDir": "relative/dir"}, "WorkingDir"),
        ({"Hostname": "h" * 300}, "Hostname"),
        ({"Hostname": "bad host"}, "Hostname"),
        ({"Env": "A=B"}, "Env"),
        ({"Env": ["=nokey"]}, "Env"),
        ({"Tty": "yes"}, "Tty"),
        ({"StopSignal": "BOGUS"}, "StopSignal"),
        ({"StopTimeout": "10"}, "StopTimeout"),
        ({"ExposedPorts": {"http": {}}}, "http"),
        ({"Volumes": {"relative": {}}}, "Volumes"),
        ({"Healthcheck": {"Test": ["WHATEVER"]}}, "Healthcheck.Test"),
        ({"Healthcheck": {"Interval": 500}}, "Healthcheck.Interval"),
        ({"Healthcheck": {"StartInterval": -1}}, "Healthcheck.StartInterval"),
        ({"Runtime": "crun"}, "crun"),
        ({"MacAddress": "02:42:ac:11:00"}, "MacAddress"),
        ({"MacAddress": "01:00:5e:00:00:01"}, "MacAddress"),  # multicast
        ({"HostConfig": {"Runtime": "kata"}}, "kata"),
        ({"Image": 5}, "Image"),
        ({"Cmd": 7}, "Cmd"),
        ({"HostConfig": []}, "HostConfig"),
        ({"HostConfig": {"RestartPolicy": "always"}}, "HostConfig.RestartPolicy"),
        ({"HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}, "sometimes"),
        ({"HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}}, "retry"),
        ({"HostConfig": {"Memory": 1 << 60}}, "HostConfig.Memory"),
        ({"HostConfig": {"Memory": "256m"}}, "HostConfig.Memory"),
        ({"HostConfig": {"Memory": 1 << 20}}, "HostConfig.Memory"),
        ({"HostConfig": {"NanoCpus": 10**15}}, "CPUs"),
        ({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "x"}]}}}, "HostPort"),
        ({"HostConfig": {"PortBindings": {"80/tcp": "8080"}}}, "PortBindings"),
        ({"HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "nope"}]}}}, "HostIp"),
        ({"HostConfig": {"LogConfig": {"Type": "asdf"}}}, "asdf"),
        ({"HostConfig": {"ExtraHosts": ["nohost"]}}, "ExtraHosts"),
        ({"HostConfig": {"Dns": ["not-an-ip"]}}, "Dns"),
        ({"HostConfig": {"Tmpfs": {"rel": ""}}}, "Tmpfs"),
        ({"HostConfig": {"CpusetCpus": "a-b"}}, "CpusetCpus"),
        ({"HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}}, "AutoRemove"),
        ({"NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": "x"}}}}, "Aliases"),
    ],
)
def test_bad_create_field_is_400_naming_it(body, field):
    with pytest.raises(InvalidArgument) as err:
        _create(**body)
    assert field in err.value.message and err.value.status == 400


def test_missing_image_is_400():
    with pytest.raises(InvalidArgument, match="Image"):
        decode.create_spec({"Cmd": ["true"]})


def test_nulls_read_as_defaults():
    spec = decode.create_spec(
        {"Image": "busybox", "Cmd": None, "Env": None, "Labels": None, "HostConfig": None}
    )
    assert spec.config.cmd is None and spec.config.env == [] and spec.host == s.HostSpec()


def test_string_command_is_one_argument_and_empty_entrypoint_clears():
    spec = _create(Cmd="echo hi", Entrypoint="")
    assert spec.config.cmd == ["echo hi"] and spec.config.entrypoint == []


def test_host_config_decodes_into_typed_fields():
    h = _host(
        Memory=128 << 20,
        NanoCpus=1_500_000_000,
        RestartPolicy={"Name": "on-failure", "MaximumRetryCount": 3},
        PortBindings={"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": None},
        PublishAllPorts=True,
        LogConfig={"Type": "none"},
        Tmpfs={"/run": "size=1m"},
        CpuShares=512,
        OomKillDisable=False,
    )
    assert h.memory == 128 << 20 and h.nano_cpus == 1_500_000_000
    assert h.restart == s.RestartPolicy("on-failure", 3)
    assert s.PortRequest(80, "tcp", "127.0.0.1", 8080) in h.port_bindings
    assert s.PortRequest(53, "udp", "", 0) in h.port_bindings
    assert h.log_config.type == "none" and h.tmpfs == {"/run": "size=1m"}
    assert h.cpu_shares == 512 and h.passthrough == {"OomKillDisable": False}
    assert s.vcpus(h.nano_cpus, 1) == 2


def test_networking_config_gives_endpoints():
    spec = _create(
        NetworkingConfig={
            "EndpointsConfig": {
                "front": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.1.0.5"}}
            }
        }
    )
    assert spec.networks["front"].aliases == ["web"]
    assert spec.networks["front"].ipv4_address == "10.1.0.5"


@pytest.mark.parametrize("name", ["..bad", "a", "with space", "-dash"])
def test_bad_container_names_are_refused(name):
    with pytest.raises(InvalidArgument, match="Invalid container name"):
        decode.create_spec(BASE, name)


def test_exec_spec_and_console_size():
    ex = decode.exec_spec({"Cmd": ["ls"], "Tty": True, "ConsoleSize": [24, 80]})
    assert ex.cmd == ["ls"] and ex.tty and ex.console_size == (24, 80)
    for bad in (["24", "80"], [24], [-1, 80], "24x80"):
        with pytest.raises(InvalidArgument, match="ConsoleSize"):
            decode.exec_spec({"Cmd": ["ls"], "ConsoleSize": bad})
    with pytest.raises(InvalidArgument, match="No exec command"):
        decode.exec_spec({"Cmd": []})


@pytest.mark.parametrize(
    "text, message",
    [
        ("{bad", "JSON"),
        ("[1]", "object"),
        ('{"colour": ["red"]}', "colour"),
        ('{"status": "running"}', "status"),
        ('{"status": [1]}', "status"),
    ],
)
def test_bad_filters_are_400(text, message):
    with pytest.raises(InvalidArgument, match=message):
        decode.filters(text, {"status", "name"})


def test_filters_accept_docker_forms():
    assert decode.filters('{"status": {"exited": true}}', {"status"}) == {"status": ["exited"]}
    assert decode.filters('{"name": ["a", "b"]}', {"name"}) == {"name": ["a", "b"]}


@pytest.mark.parametrize("value", ["abc", "-5", "nan", "inf"])
def test_bad_timestamps_are_400(value):
    with pytest.raises(InvalidArgument, match="since"):
        decode.timestamp({"since": value}, "since")


def test_timestamps_parse_fractions():
    assert decode.timestamp({"since": "1700000000.5"}, "since") == 1700000000.5
    assert decode.timestamp({}, "since") is None


def test_update_spec():
    up = decode.update_spec({"RestartPolicy": {"Name": "always"}, "Memory": 256 << 20})
    assert up.restart == s.RestartPolicy("always") and up.memory == 256 << 20
    assert up.nano_cpus is None
    with pytest.raises(InvalidArgument, match="RestartPolicy"):
        decode.update_spec({"RestartPolicy": "always"})


def test_runtime_from_host_config_or_docker_py_config():
    assert _host().runtime == ""
    assert _host(Runtime="runc").runtime == "runc"
    assert _create(Runtime="runc").host.runtime == "runc"  # where docker-py puts it
    assert "Runtime" not in _host(Runtime="hyper").passthrough


def test_volume_driver_is_kept_for_inspect():
    """docker-py's volume_driver is shown back by inspect (it has no effect in a VM)."""
    assert _host(VolumeDriver="foo").passthrough == {"VolumeDriver": "foo"}


def test_healthcheck_durations_and_start_interval():
    hc = _create(
        Healthcheck={"Test": ["CMD", "true"], "Interval": 10**9, "StartInterval": 2 * 10**9}
    ).config.healthcheck
    assert hc == s.Healthcheck(["CMD", "true"], interval=10**9, start_interval=2 * 10**9)


def test_exec_detach_keys_in_either_spelling():
    assert decode.exec_spec({"Cmd": ["sh"], "DetachKeys": "ctrl-x"}).detach_keys == "ctrl-x"
    assert decode.exec_spec({"Cmd": ["sh"], "detachKeys": "ctrl-a,b"}).detach_keys == "ctrl-a,b"
    assert decode.exec_spec({"Cmd": ["sh"]}).detach_keys == ""
    with pytest.raises(InvalidArgument, match="Invalid detach keys"):
        decode.exec_spec({"Cmd": ["sh"], "DetachKeys": "ctrl-1"})
