"""Out of memory: when the guest kernel's OOM killer kills a process of a container,
inspect says ``State.OOMKilled`` for that run (and ``Hyper.Reason`` "oom: ..."), and the
"oom" event comes before "die", as Docker has it. Real VMs of 64 MiB (three boots)."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.vm
IMG = "busybox"
LABELS = {"test": "oom"}


def _create(api, cmd: list[str]):
    host = api.create_host_config(mem_limit="64m")
    return api.create_container(IMG, cmd, host_config=host, labels=LABELS)


def _actions(api, c, since: float) -> list[str]:
    events = api.events(
        since=since, until=time.time() + 1, decode=True, filters={"container": c["Id"]}
    )
    return [e["Action"] for e in events]


def test_a_main_process_the_oom_killer_kills_is_oomkilled_137(api):
    since = time.time()
    c = _create(api, ["tail", "/dev/zero"])  # tail keeps one "line": it grows until killed
    api.start(c)
    assert api.wait(c, timeout=300)["StatusCode"] == 137
    info = api.inspect_container(c)
    state = info["State"]
    assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 137, True)
    assert info["Hyper"]["Reason"].startswith("oom:"), info["Hyper"]["Reason"]
    actions = _actions(api, c, since)
    assert actions.index("oom") == actions.index("die") - 1, actions


def test_a_child_killed_marks_its_run_and_the_next_clean_run_is_not_oomkilled(api):
    """The main process survives its child's OOM kill (exit 0), yet the run is OOMKilled;
    the next start of the container runs clean and reports false."""
    once = "[ -e /ran ] || { touch /ran; tail /dev/zero; echo child $?; }; echo done"
    c = _create(api, ["sh", "-c", once])
    api.start(c)
    assert api.wait(c, timeout=300)["StatusCode"] == 0
    assert api.logs(c, stderr=False) == b"child 137\ndone\n"  # sh says "Killed" on stderr
    assert api.inspect_container(c)["State"]["OOMKilled"] is True
    api.start(c)
    assert api.wait(c, timeout=300)["StatusCode"] == 0
    info = api.inspect_container(c)
    assert (info["State"]["OOMKilled"], info["Hyper"]["Reason"]) == (False, "")
    assert api.logs(c, stderr=False).endswith(b"done\ndone\n")
