"""Container state owns its waiters; restart policy decides with moby's back-off."""

from __future__ import annotations

import asyncio

import pytest

from hyperd.containers import state as st
from hyperd.containers.restart import BACKOFF_MAX, BACKOFF_START, RestartManager
from hyperd.containers.spec import RestartPolicy


def run(coro):
    return asyncio.run(coro)


def test_not_running_answers_at_once_for_a_created_container():
    async def go():
        s = st.State()
        return (await asyncio.wait_for(s.wait(st.NOT_RUNNING), 1)).exit_code

    assert run(go()) == 0


def test_next_exit_waits_for_the_exit_of_a_run_started_after_the_wait():
    async def go():
        s = st.State()
        fut = s.wait(st.NEXT_EXIT)  # the docker CLI waits before it starts
        s.set_running()
        await asyncio.sleep(0)
        assert not fut.done()
        s.set_stopped(3)
        return await asyncio.wait_for(fut, 1)

    assert run(go()) == st.ExitStatus(3)


def test_not_running_waits_while_running_and_restarting_answers_it():
    async def go():
        s = st.State()
        s.set_running()
        fut = s.wait(st.NOT_RUNNING)
        await asyncio.sleep(0)
        assert not fut.done()
        s.set_restarting(1)
        return await asyncio.wait_for(fut, 1)

    assert run(go()).exit_code == 1


def test_removed_waits_for_removal_not_for_the_exit():
    async def go():
        s = st.State()
        s.set_running()
        removed = s.wait(st.REMOVED)
        s.set_stopped(0)
        await asyncio.sleep(0)
        assert not removed.done()
        s.set_removed()
        return await asyncio.wait_for(removed, 1)

    assert run(go()).exit_code == 0


def test_each_waiter_answers_once_and_a_later_wait_sees_the_next_exit():
    async def go():
        s = st.State()
        s.set_running()
        first = s.wait(st.NEXT_EXIT)
        s.set_stopped(1)
        s.set_running()
        second = s.wait(st.NEXT_EXIT)
        s.set_stopped(2)
        return (await first).exit_code, (await second).exit_code

    assert run(go()) == (1, 2)


def test_start_failure_keeps_created_and_records_the_code():
    async def go():
        s = st.State()
        fut = s.wait(st.NEXT_EXIT)
        s.set_start_failed('exec: "x": executable file not found in $PATH', 127)
        return s, await fut

    s, status = run(go())
    assert s.status == st.CREATED and s.exit_code == 127 and "not found" in status.error


def test_state_round_trips_without_waiters():
    async def go():
        s = st.State()
        s.wait(st.NEXT_EXIT)
        s.set_running()
        return s

    s = run(go())
    data = s.to_dict()
    assert "_waiters" not in data
    assert st.State.from_dict({**data, "from_a_newer_version": 1}).status == st.RUNNING


def test_paused_counts_as_running():
    s = st.State()
    s.set_running()
    s.set_paused(True)
    assert s.running and s.paused and s.status == st.PAUSED


@pytest.mark.parametrize(
    "policy, code, count, stopped, want",
    [
        ("no", 1, 0, False, False),
        ("always", 0, 5, False, True),
        ("always", 0, 0, True, False),
        ("unless-stopped", 1, 0, False, True),
        ("on-failure", 0, 0, False, False),
        ("on-failure", 2, 0, False, True),
    ],
)
def test_restart_policy(policy, code, count, stopped, want):
    rm = RestartManager(RestartPolicy(policy), count)
    assert rm.should_restart(code, stopped, 1.0) is want


def test_on_failure_stops_at_its_maximum():
    rm = RestartManager(RestartPolicy("on-failure", 2))
    assert rm.should_restart(1, False, 0)
    rm.restart_count = 2
    assert not rm.should_restart(1, False, 0)


def test_backoff_doubles_while_crashing_and_resets_after_a_stable_run():
    rm = RestartManager(RestartPolicy("always"))
    delays = []
    for _ in range(12):
        rm.should_restart(1, False, 0.5)
        delays.append(rm.delay)
    assert delays[:3] == [BACKOFF_START, BACKOFF_START * 2, BACKOFF_START * 4]
    assert delays[-1] == BACKOFF_MAX
    rm.should_restart(1, False, 30.0)
    assert rm.delay == BACKOFF_START
