"""Docker's behaviour where docker-py's suite found hyperd apart: a SIGKILL that answers once
the container is down, no removal of a restarting container, Config.Env as given, the
runtime name, info's Debug, top, legacy links (variables, names, removal), and restarts
that reuse the VM."""

from __future__ import annotations

import subprocess
import time

import docker
import pytest

IMG = "busybox"


def _create(api, *args, **kw):
    return api.create_container(IMG, *args, labels={"test": "docker-semantics"}, **kw)


def test_env_keeps_a_variable_without_value(api):
    c = _create(api, "true", environment={"Foo": None, "Other": "one", "Blank": ""})
    env = api.inspect_container(c)["Config"]["Env"]
    assert {"Foo", "Other=one", "Blank="} <= set(env)


def test_runtime_docker_names_is_accepted_and_others_refused(api):
    c = _create(api, "true", runtime="runc")
    assert api.inspect_container(c)["HostConfig"]["Runtime"] == "runc"
    plain = _create(api, "true")
    assert api.inspect_container(plain)["HostConfig"]["Runtime"] == "hyper"
    with pytest.raises(docker.errors.APIError, match="Unknown runtime specified crun"):
        _create(api, "true", runtime="crun")


def test_info_says_whether_the_daemon_debugs(api, daemon):
    assert api.info()["Debug"] is ('log_level = "debug"' in daemon.config.read_text())


@pytest.mark.vm
def test_top_then_sigkill_answers_once_the_container_is_down(api):
    c = _create(api, ["sleep", "300"])
    api.start(c)
    top = api.top(c)
    assert top["Processes"][0][-1].split() == ["sleep", "300"]
    assert top["Titles"][-1] == "CMD"
    api.kill(c)
    state = api.inspect_container(c)["State"]
    assert (state["Running"], state["Status"], state["ExitCode"]) == (False, "exited", 137)


@pytest.mark.vm
def test_a_restarting_container_is_not_removed_without_force(api):
    c = _create(
        api,
        ["sh", "-c", "sleep 1; exit 3"],
        host_config=api.create_host_config(restart_policy={"Name": "always"}),
    )
    api.start(c)
    api.wait(c)  # it ended once: now restarting or running again
    with pytest.raises(docker.errors.APIError, match="Stop the container before"):
        api.remove_container(c)
    api.remove_container(c, force=True)


@pytest.mark.vm
def test_links_give_variables_and_names_and_can_be_removed(api):
    parent = _create(api, ["sleep", "300"], environment={"FOO": "1"}, name="semantics-db")
    api.start(parent)
    child = _create(
        api,
        "env",
        name="semantics-app",
        host_config=api.create_host_config(links={"semantics-db": "db-1"}),
    )
    api.start(child)
    assert api.wait(child)["StatusCode"] == 0
    env = api.logs(child).decode().splitlines()
    assert "DB_1_NAME=/semantics-app/db-1" in env and "DB_1_ENV_FOO=1" in env
    assert not any(v.startswith("DB_1_ENV_PATH=") for v in env)
    names = _names(api, parent["Id"])
    assert names == ["/semantics-db", "/semantics-app/db-1"]
    api.remove_container("semantics-app/db-1", link=True)
    assert _names(api, parent["Id"]) == ["/semantics-db"]
    assert api.inspect_container(child)["HostConfig"]["Links"] is None
    with pytest.raises(docker.errors.NotFound, match="No such link"):
        api.remove_container("semantics-app/db-1", link=True)

    api.stop(parent, timeout=0)
    orphan = _create(api, "env", host_config=api.create_host_config(links={"semantics-db": "db"}))
    with pytest.raises(docker.errors.APIError, match="Cannot link to a non running container"):
        api.start(orphan)


def _runs(api, c, want: str) -> str:
    """/runs in the container once it reads `want`, or as it reads after 30 s: the shell
    writes it a moment after its start is answered."""
    for _ in range(300):
        got = _exec(api, c, ["cat", "/runs"])
        if got == want:
            break
        time.sleep(0.1)
    return got


def _names(api, cid: str) -> list[str]:
    return next(c["Names"] for c in api.containers(all=True) if c["Id"] == cid)


@pytest.mark.vm
def test_restarts_reuse_the_vm(api):
    """A restart (the user's, or the restart policy's) makes the container again in the VM
    that is already up: the guest's boot ID stays, and the container's writes stay."""
    boot_id = ["cat", "/proc/sys/kernel/random/boot_id"]
    c = _create(api, ["sh", "-c", "trap 'exit 3' TERM; echo run >> /runs; sleep 300 & wait"])
    api.start(c)
    first = _exec(api, c, boot_id)
    assert _runs(api, c, "run\n") == "run\n"  # its trap is set: TERM ends it with 3
    api.restart(c, timeout=10)
    assert _exec(api, c, boot_id) == first
    assert _runs(api, c, "run\nrun\n") == "run\nrun\n"
    api.kill(c)  # the new run's own end, not the last one's
    assert api.inspect_container(c)["State"]["ExitCode"] == 137

    failing = _create(
        api,
        ["sh", "-c", "cat /proc/sys/kernel/random/boot_id; exit 1"],
        host_config=api.create_host_config(
            restart_policy={"Name": "on-failure", "MaximumRetryCount": 2}
        ),
    )
    api.start(failing)
    for _ in range(600):
        state = api.inspect_container(failing)["State"]
        if state["Status"] == "exited":
            break
        time.sleep(0.1)
    ids = api.logs(failing).decode().split()
    assert len(ids) == 3 and len(set(ids)) == 1

    api.remove_container(c, force=True)
    api.remove_container(failing)
    gone = {x["Id"][:12] for x in (c, failing)}
    for _ in range(100):  # VMs go in the background
        vms = subprocess.run(["virsh", "list", "--name"], capture_output=True, text=True)
        if not gone & {vm[-12:] for vm in vms.stdout.split()}:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"VMs left: {vms.stdout}")


def _exec(api, c, cmd) -> str:
    return api.exec_start(api.exec_create(c, cmd)).decode()
