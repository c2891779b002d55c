"""The mount, logging, privilege, name resolution, health check and attach flags of
``run``/``create``: parsed by click as typed, turned into the create body (no daemon)."""

from __future__ import annotations

import json
import os

import pytest

from hyperctl.commands.run import build_config, create, run
from hyperctl.group import cli
from hyperctl.mounts import parse_mount

SECOND = 1_000_000_000


def body(*args: str, command=create, attach: bool = False) -> dict:
    """The create body ``hyper create ARGS busybox`` sends."""
    params = command.make_context(command.name, [*args, "busybox"]).params
    return build_config(params, attach=attach)


def usage_error(runner, *args: str) -> str:
    """The one stderr line of a refused command line (exit 125, no daemon reached)."""
    res = runner.invoke(cli, list(args), env={"HYPER_HOST": "unix:///nonexistent/hyperd.sock"})
    assert res.exit_code == 125, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hyper: "), res.stderr
    assert "cannot connect" not in lines[0]
    return lines[0]


def test_volume_flags_are_binds_except_a_lone_path_which_is_an_anonymous_volume():
    cfg = body("-v", "/host:/data:ro", "-v", "named:/v", "--volume", "/anon", "-v", "./rel:/r")
    assert cfg["HostConfig"]["Binds"] == ["/host:/data:ro", "named:/v", f"{os.getcwd()}/rel:/r"]
    assert cfg["Volumes"] == {"/anon": {}}
    assert "Binds" not in body()["HostConfig"] and "Volumes" not in body()


def test_mount_flags_become_mount_objects():
    cfg = body(
        "--mount",
        "type=bind,src=/srv,dst=/data,readonly,bind-propagation=rshared",
        "--mount",
        'target=/v,source=vol,volume-nocopy=true,"volume-label=k=a,b",volume-subpath=sub',
        "--mount",
        "type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1770,ro=false",
    )
    assert cfg["HostConfig"]["Mounts"] == [
        {
            "Type": "bind",
            "Source": "/srv",
            "Target": "/data",
            "ReadOnly": True,
            "BindOptions": {"Propagation": "rshared"},
        },
        {
            "Type": "volume",
            "Target": "/v",
            "Source": "vol",
            "VolumeOptions": {"NoCopy": True, "Labels": {"k": "a,b"}, "Subpath": "sub"},
        },
        {
            "Type": "tmpfs",
            "Target": "/t",
            "ReadOnly": False,
            "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1770},
        },
    ]


@pytest.mark.parametrize(
    "spec,error",
    [
        ("type=bind,foo=bar", "unexpected key 'foo' in 'foo=bar'"),
        ("src=x", "target is required"),
        ("type=,dst=/x", "type is required"),
        ("badfield", "invalid field 'badfield' must be a key=value pair"),
        ("ro=maybe,dst=/x", "invalid value for ro: maybe"),
        ("type=bind,src=/x,dst=/y,volume-nocopy", "cannot mix 'volume-*' options with mount type"),
        ("type=volume,dst=/y,bind-propagation=shared", "cannot mix 'bind-*' options"),
        ("type=bind,src=/x,dst=/y,tmpfs-size=1m", "cannot mix 'tmpfs-*' options"),
        ("type=tmpfs,dst=/x,tmpfs-mode=9", "invalid value for tmpfs-mode: 9"),
        ("type=tmpfs,dst=/x,tmpfs-size=1q", "invalid value for tmpfs-size: 1q"),
        ("type=volume,dst=/x,volume-opt=size=1g", "'volume-opt' is not supported by hyper"),
        ("", "empty mount specification"),
    ],
)
def test_bad_mount_values_are_one_line_usage_errors(runner, spec, error):
    line = usage_error(runner, "run", "--mount", spec, "busybox")
    assert "Invalid value for '--mount'" in line and error in line


def test_tmpfs_read_only_and_volumes_from():
    host = body(
        "--tmpfs", "/run:size=64m,mode=1777", "--tmpfs", "/tmp", "--read-only",
        "--volumes-from", "other:ro",
    )["HostConfig"]  # fmt: skip
    assert host["Tmpfs"] == {"/run": "size=64m,mode=1777", "/tmp": ""}
    assert host["ReadonlyRootfs"] is True and host["VolumesFrom"] == ["other:ro"]


def test_logging_shm_privileges_and_security_options(tmp_path):
    profile = tmp_path / "seccomp.json"
    profile.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW"\n}\n')
    host = body(
        "--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=3",
        "--shm-size", "128m", "--privileged",
        "--cap-add", "net_admin", "--cap-add", "CAP_SYS_TIME", "--cap-drop", "chown",
        "--cap-drop", "net_admin",
        "--security-opt", "no-new-privileges", "--security-opt", f"seccomp={profile}",
        "--security-opt", "apparmor:unconfined",
    )["HostConfig"]  # fmt: skip
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "10m", "max-file": "3"},
    }
    assert host["ShmSize"] == 128 << 20 and host["Privileged"] is True
    assert host["CapAdd"] == ["CAP_NET_ADMIN", "CAP_SYS_TIME"] and host["CapDrop"] == ["CAP_CHOWN"]
    assert host["SecurityOpt"] == [
        "no-new-privileges",
        'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}',
        "apparmor:unconfined",
    ]
    assert body("--cap-add", "ALL", "--cap-add", "x")["HostConfig"]["CapAdd"] == ["ALL"]
    assert body("--log-opt", "max-size=1m")["HostConfig"]["LogConfig"]["Type"] == ""


def test_name_resolution_sysctls_and_container_fields():
    cfg = body(
        "--add-host", "db:10.0.0.2", "--add-host", "v6=[::1]", "--add-host", "gw:host-gateway",
        "--dns", "1.1.1.1", "--dns", "0:0::1", "--dns-search", "example.com",
        "--dns-search", ".", "--dns-option", "ndots:2",
        "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmax=65536",
        "--init", "--stop-timeout", "30", "--group-add", "audio", "--group-add", "123",
        "--domainname", "example.org", "--mac-address", "02:42:ac:11:00:02",
    )  # fmt: skip
    host = cfg["HostConfig"]
    assert host["ExtraHosts"] == ["db:10.0.0.2", "v6:::1", "gw:host-gateway"]
    assert host["Dns"] == ["1.1.1.1", "::1"] and host["DnsSearch"] == ["example.com", "."]
    assert host["DnsOptions"] == ["ndots:2"] and host["GroupAdd"] == ["audio", "123"]
    assert host["Sysctls"] == {"net.ipv4.ip_forward": "1", "kernel.shmmax": "65536"}
    assert host["Init"] is True
    assert cfg["StopTimeout"] == 30 and cfg["Domainname"] == "example.org"
    assert cfg["MacAddress"] == "02:42:ac:11:00:02"
    assert "Init" not in body()["HostConfig"] and "StopTimeout" not in body()


def test_health_flags():
    cfg = body(
        "--health-cmd", "wget -q localhost", "--health-interval", "1m30s",
        "--health-timeout", "500ms", "--health-retries", "3", "--health-start-period", "2s",
    )  # fmt: skip
    assert cfg["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q localhost"],
        "Interval": 90 * SECOND,
        "Timeout": SECOND // 2,
        "StartPeriod": 2 * SECOND,
        "Retries": 3,
    }
    assert body("--no-healthcheck")["Healthcheck"] == {"Test": ["NONE"]}
    assert "Healthcheck" not in body()


def test_attach_names_the_streams():
    cfg = body("-a", "stdout", command=run, attach=True)
    assert (cfg["AttachStdin"], cfg["AttachStdout"], cfg["AttachStderr"]) == (False, True, False)
    cfg = body("-i", "-a", "STDERR", command=run, attach=True)
    assert (cfg["AttachStdin"], cfg["AttachStdout"], cfg["AttachStderr"]) == (True, False, True)
    assert cfg["StdinOnce"] is True
    cfg = body("--attach", "stdin", "-a", "stdout", "-a", "stderr")
    assert cfg["AttachStdin"] and cfg["AttachStdout"] and cfg["AttachStderr"]


@pytest.mark.parametrize(
    "args,error",
    [
        (["-d", "-a", "stdout"], "conflicting options: cannot specify both --attach and --detach"),
        (["-a", "foo"], "valid streams are STDIN, STDOUT and STDERR"),
        (["--no-healthcheck", "--health-cmd", "x"], "--no-healthcheck conflicts with --health-*"),
        (["--health-interval", "5"], 'time: missing unit in duration "5"'),
        (["--health-timeout", "-5s"], "--health-timeout cannot be negative"),
        (["--health-retries", "x"], "--health-retries"),
        (["--sysctl", "kernel.foo=1"], "sysctl 'kernel.foo=1' is not allowed"),
        (["--log-driver", "none", "--log-opt", "a=b"], "invalid logging opts for driver none"),
        (["--dns", "1.2.3"], "IP address is not correctly formatted: 1.2.3"),
        (["--dns-search", "bad_domain!"], "bad_domain! is not a valid domain"),
        (["--add-host", "foo"], 'bad format for add-host: "foo"'),
        (["--add-host", "foo:1.2.3"], 'invalid IP address in add-host: "1.2.3"'),
        (["--mac-address", "zz"], "zz is not a valid mac address"),
        (["--security-opt", "foo"], 'Invalid --security-opt: "foo"'),
        (["--security-opt", "seccomp=/nonexistent.json"], "opening seccomp profile"),
        (["--shm-size", "1q"], "invalid size"),
        (["-v", ""], "invalid empty volume spec"),
        (["-v", "/a:/b:ro:x"], "invalid spec: /a:/b:ro:x: too many colons"),
    ],
)
def test_bad_flag_values_are_one_line_usage_errors(runner, args, error):
    assert error in usage_error(runner, "run", *args, "busybox")


def test_mount_csv_quoting_and_relative_source():
    m = parse_mount('type=bind,"source=./a,b",target=/x')
    assert m == {"Type": "bind", "Source": os.path.abspath("./a,b"), "Target": "/x"}
    assert json.dumps(parse_mount("dst=/d"))  # a volume by default, JSON-able
