"""The `hyper` CLI's verbs against the shared real daemon (real VMs for the running ones).

Containers made here carry the label hyper-test=<this module's run>, and the prune and
ps tests filter on it, so other tests' containers on the shared daemon are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

pytestmark = pytest.mark.vm
IMG = "busybox"
RUN = uuid.uuid4().hex[:8]
LABEL = f"hyper-test={RUN}"


def _name(prefix: str = "v") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _ok(res) -> str:
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    return res.stdout.decode()


def _lines(res) -> list[str]:
    return _ok(res).splitlines()


def _inspect(hyperd, name: str, template: str) -> str:
    return _ok(hyperd.hyper("inspect", "-f", template, name)).strip()


def _create(hyperd, *flags: str, cmd=("true",)) -> str:
    name = _name("c")
    _ok(hyperd.hyper("create", "--name", name, "--label", LABEL, *flags, IMG, *cmd))
    return name


@pytest.fixture(scope="module")
def sleeper(daemon):
    """One running container (a VM) for the verbs that need one."""
    name = _name("sleeper")
    _ok(daemon.hyper("run", "-d", "--name", name, "--label", LABEL, IMG, "sleep", "100000"))
    yield name
    daemon.hyper("rm", "-f", name)


def test_run_exits_with_the_code_and_rm_has_removed_it(hyperd):
    """The wait (condition removed) is registered before the start and answers once the
    container is gone: when `run --rm` returns, the name is free again."""
    name = _name()
    res = hyperd.hyper("run", "--rm", "--name", name, IMG, "sh", "-c", "echo o; echo e >&2; exit 3")
    assert (res.returncode, res.stdout, res.stderr) == (3, b"o\n", b"e\n")
    res = hyperd.hyper("inspect", name)
    assert res.returncode == 125 and res.stderr == f"hyper: No such object: {name}\n".encode()


def test_start_attach_returns_each_runs_exit_code(hyperd):
    name = _create(hyperd, cmd=("sh", "-c", "echo ran; exit 5"))
    for _ in range(2):  # next-exit: the second start waits for its own run's exit
        res = hyperd.hyper("start", "-a", name)
        assert (res.returncode, res.stdout) == (5, b"ran\n"), res.stderr
    _ok(hyperd.hyper("rm", name))


def test_pause_shows_paused_and_unpause_resumes(hyperd, sleeper):
    status = ["ps", "--filter", f"name={sleeper}", "--format", "{{.Status}}|{{.State}}"]
    assert _lines(hyperd.hyper("pause", sleeper)) == [sleeper]
    assert _lines(hyperd.hyper(*status))[0].endswith("(Paused)|paused")
    assert _inspect(hyperd, sleeper, "{{.State.Paused}} {{.State.Status}}") == "true paused"
    assert _lines(hyperd.hyper("container", "unpause", sleeper)) == [sleeper]
    assert _lines(hyperd.hyper(*status))[0].startswith("Up ")
    assert "Paused" not in _lines(hyperd.hyper(*status))[0]
    assert _ok(hyperd.hyper("exec", sleeper, "echo", "resumed")) == "resumed\n"


def test_pause_of_an_unknown_container_is_one_line_and_125(hyperd):
    res = hyperd.hyper("pause", "no-such-container")
    assert res.returncode == 125 and res.stdout == b""
    assert res.stderr == b"hyper: No such container: no-such-container\n"


def test_top_lists_the_process(hyperd, sleeper):
    lines = _lines(hyperd.hyper("top", sleeper))
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert any(line.endswith("sleep 100000") for line in lines[1:]), lines
    aux = _lines(hyperd.hyper("container", "top", sleeper, "aux"))
    assert aux[0].split()[:3] == ["USER", "PID", "%CPU"]
    assert any(line.endswith("sleep 100000") for line in aux[1:]), aux


def test_stats_no_stream_prints_a_row(hyperd, sleeper):
    lines = _lines(hyperd.hyper("stats", "--no-stream", sleeper))
    assert lines[0].split() == (
        ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%"]
        + ["NET", "I/O", "BLOCK", "I/O", "PIDS"]
    )
    assert len(lines) == 2 and lines[1].split()[1] == sleeper
    row = json.loads(_ok(hyperd.hyper("stats", "--no-stream", "--format", "json", sleeper)))
    assert row["Name"] == sleeper and row["CPUPerc"].endswith("%")
    assert row["MemUsage"].endswith(" / 256MiB")  # the VM's memory: the daemon's default
    every = _lines(hyperd.hyper("stats", "--no-stream", "--format", "{{.Name}}"))
    assert sleeper in every


def test_events_show_the_life_of_a_run(hyperd):
    name = _name("ev")
    since = time.time()
    _ok(hyperd.hyper("run", "--rm", "--name", name, IMG, "true"))
    until = time.time()
    window = ["--since", f"{since:.3f}", "--until", f"{until:.3f}", "--filter", f"container={name}"]
    actions = _lines(hyperd.hyper("events", *window, "--format", "{{.Action}}"))
    assert actions == ["create", "start", "die", "destroy"]
    lines = _lines(hyperd.hyper("system", "events", *window))
    assert [line.split()[1:3] for line in lines] == [["container", a] for a in actions]
    assert lines[2].endswith(f"(exitCode=0, image={IMG}, name={name})")
    docker = shutil.which("docker")
    assert docker, "the docker CLI is not installed (tools/install-deps.sh installs it)"
    env = {**os.environ, "DOCKER_HOST": f"unix://{hyperd.socket}", "DOCKER_CONFIG": "/nonexistent"}
    theirs = subprocess.run([docker, "events", *window], capture_output=True, env=env, timeout=60)
    assert theirs.stdout.decode().splitlines() == lines, theirs.stderr


def test_update_changes_the_restart_policy_and_resources(hyperd):
    name = _create(hyperd)
    assert _lines(hyperd.hyper("update", "--restart", "on-failure:3", name)) == [name]
    policy = json.loads(_inspect(hyperd, name, "{{json .HostConfig.RestartPolicy}}"))
    assert policy == {"Name": "on-failure", "MaximumRetryCount": 3}
    _ok(hyperd.hyper("container", "update", "-m", "300m", "--cpus", "2", name))
    assert _inspect(hyperd, name, "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}") == (
        f"{300 << 20} 2000000000"
    )
    _ok(hyperd.hyper("rm", name))


def test_rename(hyperd):
    old, new = _create(hyperd), _name("renamed")
    assert _ok(hyperd.hyper("rename", old, new)) == ""
    assert _inspect(hyperd, new, "{{.Name}}") == f"/{new}"
    res = hyperd.hyper("container", "rename", old, "x")
    assert res.returncode == 125 and res.stderr == f"hyper: No such container: {old}\n".encode()
    _ok(hyperd.hyper("rm", new))


def test_prune_removes_stopped_containers_only(hyperd, sleeper):
    created = _create(hyperd)
    exited = _name("exited")
    _ok(hyperd.hyper("run", "--name", exited, "--label", LABEL, IMG, "true"))
    ids = {_inspect(hyperd, n, "{{.Id}}") for n in (created, exited)}
    out = _ok(hyperd.hyper("container", "prune", "-f", "--filter", f"label={LABEL}"))
    head, _, total = out.partition("\n\n")
    assert head.splitlines()[0] == "Deleted Containers:"
    assert set(head.splitlines()[1:]) == ids
    assert total.startswith("Total reclaimed space: ") and total.endswith("B\n")
    names = _lines(hyperd.hyper("ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.Names}}"))
    assert names == [sleeper]
    again = _ok(hyperd.hyper("system", "prune", "-f", "--filter", f"label={LABEL}"))
    assert again == "Total reclaimed space: 0B\n"


def test_ps_filters_every_key_the_daemon_accepts(hyperd, sleeper):
    first = _create(hyperd, "--expose", "7001")
    second = _create(hyperd, "--label", f"tier=web-{RUN}")
    exited = _name("exited")
    assert (
        hyperd.hyper(
            "run", "--name", exited, "--label", LABEL, IMG, "sh", "-c", "exit 4"
        ).returncode
        == 4
    )

    def names(*filters: str, scoped: bool = True) -> set[str]:
        args = ["ps", "-a", "--format", "{{.Names}}"]
        if scoped:  # (two label filters are one filter each, not both: hyperd ORs them)
            args += ["--filter", f"label={LABEL}"]
        for f in filters:
            args += ["--filter", f]
        return set(_lines(hyperd.hyper(*args)))

    assert names("status=created") == {first, second}
    assert names("status=running") == {sleeper}
    assert names("status=exited") == {exited}
    assert names(f"name={first}") == {first}
    assert names(f"id={_inspect(hyperd, second, '{{.Id}}')[:12]}") == {second}
    assert names(f"label=tier=web-{RUN}", scoped=False) == {second}
    assert names(f"ancestor={IMG}") == {first, second, exited, sleeper}
    assert names("exited=4") == {exited}
    assert names(f"before={second}") >= {first} and second not in names(f"before={second}")
    assert names(f"since={first}") >= {second, exited} and first not in names(f"since={first}")
    assert names("expose=7001") == {first}
    # networks and published ports exist while a container runs, and this daemon has no
    # bridge: these filters can only be seen to exclude here
    assert names("network=no-such-network") == set()
    assert names("publish=17002") == set()
    res = hyperd.hyper("ps", "--filter", "colour=red")
    assert res.returncode == 125 and res.stderr == b"hyper: invalid filter 'colour'\n"
    _ok(hyperd.hyper("rm", first, second, exited))


def test_system_df_prints_the_three_sections(hyperd, sleeper):
    lines = _lines(hyperd.hyper("system", "df"))
    assert lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [line[:15].strip() for line in lines[1:]] == [
        "Images",
        "Containers",
        "Local Volumes",
        "Build Cache",
    ]
    verbose = _ok(hyperd.hyper("system", "df", "-v"))
    sections = [s.split("\n", 1) for s in verbose.split("\n\n")]
    titles = [s[0] for s in sections if s[0].endswith(":") or s[0].startswith("Build")]
    assert titles == [
        "Images space usage:",
        "Containers space usage:",
        "Local Volumes space usage:",
        "Build cache usage: 0B",
    ]
    images = verbose.split("Images space usage:\n\n")[1].split("\n\n")[0].splitlines()
    assert images[0].split()[:3] == ["REPOSITORY", "TAG", "IMAGE"]
    assert any(row.split()[:2] == [IMG, "latest"] for row in images[1:])
    containers = verbose.split("Containers space usage:\n\n")[1].split("\n\n")[0]
    assert any(row.endswith(sleeper) for row in containers.splitlines()[1:])


def test_rm_of_several_answers_in_the_order_given_with_each_error_in_its_place(hyperd):
    """`rm a missing b c` removes at once (as the docker CLI does) but prints as given: the
    names removed, one error line for the missing one, and a non-zero exit."""
    names = [_create(hyperd) for _ in range(3)]
    missing = _name("missing")
    res = hyperd.hyper("rm", names[0], missing, names[1], names[2])
    assert res.returncode != 0
    assert res.stdout.decode().splitlines() == names
    assert res.stderr.decode().splitlines() == [f"hyper: No such container: {missing}"]
    for name in names:
        assert hyperd.hyper("inspect", name).returncode == 125
