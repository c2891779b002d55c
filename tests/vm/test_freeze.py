"""FREEZE (commit's pause): every process of the container stops, then continues; the
agent itself keeps answering (it copies the layer meanwhile)."""

from __future__ import annotations

import signal

import pytest

from hyperd.agent.client import AgentError

pytestmark = pytest.mark.vm


def test_freeze_stops_every_process_of_the_container_and_thaw_continues(guest, loop_thread):
    async def scenario():
        parent = await guest.start(["sh", "-c", "sleep 1000 & sleep 999; wait"])
        for _ in range(50):  # until the shell has started both sleeps
            procs = await guest.agent.processes("c0")
            if {("sleep", "1000"), ("sleep", "999")} <= {tuple(x.args) for x in procs}:
                break
        await guest.agent.freeze("c0", True)
        frozen = await guest.agent.processes("c0")  # the agent answers while they are stopped
        await guest.agent.freeze("c0", False)
        thawed = await guest.agent.processes("c0")
        await guest.agent.signal("c0", parent.io.process, signal.SIGKILL)
        await parent.result()
        for x in thawed:
            if tuple(x.args[:1]) == ("sleep",):
                await guest.run(["kill", "-9", str(x.pid)])
        return frozen, thawed

    frozen, thawed = loop_thread.run(scenario())
    mine = [x for x in frozen if x.args[:1] in (["sleep"], ["sh"])]
    assert len(mine) >= 3 and {x.state for x in mine} == {"T"}
    assert "T" not in {x.state for x in thawed if x.args[:1] in (["sleep"], ["sh"])}


def test_freeze_of_an_unknown_container_is_an_error(guest, loop_thread):
    with pytest.raises(AgentError, match="no container nope"):
        loop_thread.run(guest.agent.freeze("nope", True))


def test_freeze_answers_once_every_process_has_stopped_even_while_they_fork(guest, loop_thread):
    """A signal is delivered only when its process next runs, and a shell forks on: FREEZE
    answers after each process, a child forked meanwhile too, shows as stopped."""

    async def scenario():
        parent = await guest.start(["sh", "-c", "while :; do sleep 1000 & done"])
        for _ in range(50):
            if len(await guest.agent.processes("c0")) >= 4:
                break
        await guest.agent.freeze("c0", True)
        frozen = await guest.agent.processes("c0")
        await guest.agent.freeze("c0", False)
        await guest.agent.signal("c0", parent.io.process, signal.SIGKILL)
        await parent.result()
        await guest.run(["killall", "-9", "sleep"])
        return frozen

    frozen = loop_thread.run(scenario())
    assert len(frozen) >= 4
    assert {x.state for x in frozen} == {"T"}, [(x.args, x.state) for x in frozen]
