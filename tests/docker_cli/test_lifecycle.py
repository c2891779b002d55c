"""A container's life through the real docker CLI: ps, inspect, stop/start/restart/kill,
pause, rename, update, top, stats, events, prune, system df."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.vm
IMG = "busybox"


def test_one_container_through_every_lifecycle_verb(docker, name):
    """One VM, every verb that acts on a running container, in the order a user would."""
    cid = docker.ok("run", "-d", "--name", name, "-l", "tier=test", IMG, "sleep", "600").strip()
    ps = docker.ok("ps", "--filter", f"name={name}", "--format", "{{.Names}} {{.Status}}")
    assert ps.startswith(f"{name} Up")
    assert docker.ok("ps", "-q", "--filter", "label=tier=test", "--no-trunc").split() == [cid]
    assert docker.ok("inspect", "--format", "{{.State.Running}} {{.Name}}", name) == (
        f"true /{name}\n"
    )

    top = docker.ok("top", name)
    assert "PID" in top.splitlines()[0] and "sleep 600" in top
    stats = docker.ok("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", name)
    assert stats.startswith(name) and "MiB" in stats

    docker.ok("pause", name)
    assert docker.ok("inspect", "--format", "{{.State.Status}}", name) == "paused\n"
    assert "(Paused)" in docker.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
    assert docker("exec", name, "true").returncode != 0  # no exec into a paused VM
    docker.ok("unpause", name)
    assert docker.ok("exec", name, "echo", "back") == "back\n"

    new = f"{name}-renamed"
    docker.ok("rename", name, new)
    assert docker.ok("inspect", "--format", "{{.Name}}", cid) == f"/{new}\n"
    docker.ok("update", "--restart", "on-failure:3", new)
    policy = "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
    assert docker.ok("inspect", "--format", policy, new) == "on-failure:3\n"

    docker.ok("stop", "-t", "1", new)
    state = json.loads(docker.ok("inspect", new))[0]["State"]
    assert state["Status"] == "exited" and not state["Running"]
    docker.ok("start", new)
    assert docker.ok("inspect", "--format", "{{.State.Status}}", new) == "running\n"
    docker.ok("restart", "-t", "1", new)
    assert docker.ok("inspect", "--format", "{{.RestartCount}} {{.State.Status}}", new).endswith(
        "running\n"
    )
    docker.ok("kill", new)
    assert docker.ok("wait", new).strip() == "137"
    docker.ok("rm", new)
    assert docker("inspect", new).returncode == 1


def test_kill_with_a_signal_the_process_traps(docker, name):
    docker.ok(
        "run",
        "-d",
        "--name",
        name,
        IMG,
        "sh",
        "-c",
        "trap 'exit 42' USR1; while :; do sleep 1; done",
    )
    time.sleep(1)
    docker.ok("kill", "-s", "USR1", name)
    assert docker.ok("wait", name).strip() == "42"
    docker.ok("rm", name)


def test_rm_force_of_a_running_container_and_run_rm(docker, name):
    docker.ok("run", "-d", "--name", name, IMG, "sleep", "600")
    assert docker("rm", name).returncode == 1  # running: refused without -f
    docker.ok("rm", "-f", name)
    assert name not in docker.ok("ps", "-a", "--format", "{{.Names}}")
    docker.ok("run", "--rm", "--name", name, IMG, "true")
    assert name not in docker.ok("ps", "-a", "--format", "{{.Names}}")


def test_events_report_a_containers_life(docker, name):
    since = str(int(time.time()) - 1)
    docker.ok("run", "--rm", "--name", name, IMG, "true")
    until = str(int(time.time()) + 1)
    out = docker.ok(
        "events", "--since", since, "--until", until, "--filter", f"container={name}",
        "--format", "{{.Type}} {{.Action}}",
    )  # fmt: skip
    actions = [line.split()[1] for line in out.splitlines()]
    assert actions[:2] == ["create", "start"] and actions[-2:] == ["die", "destroy"], out


def test_prune_and_system_df(docker, name):
    for i in range(2):
        docker.ok("create", "--name", f"{name}-{i}", IMG, "true")
    docker.ok("run", "-d", "--name", name, IMG, "sleep", "600")
    df = docker.ok("system", "df")
    assert "Images" in df and "Containers" in df
    out = docker.ok("container", "prune", "-f")
    names = docker.ok("ps", "-a", "--format", "{{.Names}}").split()
    assert name in names and f"{name}-0" not in names and f"{name}-1" not in names
    assert "Total reclaimed space" in out
    docker.ok("rm", "-f", name)


def test_run_with_resources_and_environment(docker, name):
    out = docker.ok(
        "run", "--rm", "--name", name, "-m", "128m", "--cpus", "1", "-e", "A=1", "-w", "/tmp",
        "-h", "box", "-u", "nobody", IMG, "sh", "-c", "echo $A $(pwd) $(hostname) $(id -un)",
    )  # fmt: skip
    assert out == "1 /tmp box nobody\n"


def test_docker_cli_errors_are_one_clear_line(docker):
    res = docker("start", "no-such-container-here")
    assert res.returncode == 1 and b"no-such-container-here" in res.stderr
    res = docker("run", "--rm", "-m", "1m", IMG, "true")
    assert res.returncode == 125, res
    first = res.stderr.splitlines()[0]  # the docker CLI adds a hint line of its own
    assert first == (
        b"docker: Error response from daemon: "
        b"HostConfig.Memory: minimum memory limit allowed is 64MB"
    )
