"""The command line through click's CliRunner: exit codes, one-line errors, run flows."""

from __future__ import annotations

import pytest

from hyperctl.commands.run import build_config, create
from hyperctl.group import cli


def invoke(runner, args, host=None, **kw):
    env = {"HYPER_HOST": host} if host else {}
    return runner.invoke(cli, args, env=env, **kw)


def test_cannot_connect(runner, tmp_path):
    r = invoke(runner, ["ps"], host=f"unix://{tmp_path}/none.sock")
    assert r.exit_code == 125
    assert r.stderr == f"hyper: cannot connect to hyperd at {tmp_path}/none.sock: is it running?\n"
    assert r.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--memory", "lots", "busybox"],
        ["run", "--cpus", "x", "busybox"],
        ["run", "--restart", "sometimes", "busybox"],
        ["run", "--pull", "maybe", "busybox"],
        ["run"],
        ["ps", "--bogus"],
        ["nosuchcommand"],
        ["ps", "--filter", "novalue"],
    ],
)
def test_usage_errors_exit_125(runner, tmp_path, args):
    r = invoke(runner, args, host=f"unix://{tmp_path}/none.sock")
    assert r.exit_code == 125, r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hyper: ")


def test_help_exits_zero(runner):
    assert invoke(runner, ["--help"]).exit_code == 0
    assert invoke(runner, ["run", "--help"]).exit_code == 0
    r = invoke(runner, [])
    assert r.exit_code == 0 and "Commands:" in r.stdout


def _params(**kw):
    p = create.make_context("create", ["busybox"]).params  # every flag at its default
    p.update(
        image="busybox",
        command=("sh", "-c", "x"),
        entrypoint=None,
        env=(),
        env_file=(),
        workdir=None,
        user=None,
        hostname=None,
        stop_signal=None,
        tty=False,
        interactive=False,
        label=(),
        rm=False,
        restart={"Name": "no", "MaximumRetryCount": 0},
        cpus=None,
        memory=None,
        publish=(),
        publish_all=False,
        expose=(),
        network="default",
        link=(),
    )
    p.update(kw)
    return p


def test_build_config():
    cfg = build_config(
        _params(
            env=("A=1",),
            entrypoint="",
            workdir="/w",
            user="1:2",
            hostname="h",
            tty=True,
            interactive=True,
            label=("k=v",),
            rm=True,
            cpus=1_500_000_000,
            memory=256 << 20,
        ),
        attach=True,
    )
    assert cfg["Image"] == "busybox" and cfg["Cmd"] == ["sh", "-c", "x"]
    assert cfg["Entrypoint"] == "" and cfg["Env"] == ["A=1"]
    assert cfg["WorkingDir"] == "/w" and cfg["User"] == "1:2" and cfg["Hostname"] == "h"
    assert cfg["Tty"] and cfg["OpenStdin"] and cfg["StdinOnce"] and cfg["AttachStdin"]
    assert cfg["Labels"] == {"k": "v"}
    assert cfg["HostConfig"] == {
        "AutoRemove": True,
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "NanoCpus": 1_500_000_000,
        "Memory": 256 << 20,
        "NetworkMode": "default",
    }
    cfg = build_config(
        _params(publish=("8080:80",), publish_all=True, link=("db",), network="none"), attach=False
    )
    assert cfg["ExposedPorts"] == {"80/tcp": {}}
    assert cfg["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert cfg["HostConfig"]["PublishAllPorts"] and cfg["HostConfig"]["Links"] == ["db:db"]
    assert cfg["HostConfig"]["NetworkMode"] == "none"
    cfg = build_config(_params(command=(), entrypoint="/bin/x"), attach=False)
    assert "Cmd" not in cfg and cfg["Entrypoint"] == ["/bin/x"]
    assert not cfg["AttachStdout"] and not cfg["OpenStdin"]
