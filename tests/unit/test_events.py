"""The event bus: history since a time, live delivery, filters, bounded slow subscribers."""

from __future__ import annotations

import asyncio
import time

from hyperd.events import QUEUE, EventBus


async def _take(stream, n):
    out = []
    async for ev in stream:
        out.append(ev)
        if len(out) == n:
            break
    return out


def test_since_replays_history_then_live_events_follow():
    async def go():
        bus = EventBus()
        t0 = time.time() - 1
        bus.publish("container", "create", "c1", name="one", image="busybox")
        stream = bus.stream(since=t0)
        task = asyncio.create_task(_take(stream, 2))
        await asyncio.sleep(0.01)
        bus.publish("container", "start", "c1", name="one", image="busybox")
        return await asyncio.wait_for(task, 2)

    events = asyncio.run(go())
    assert [e.action for e in events] == ["create", "start"]
    wire = events[0].to_json()
    assert wire["Actor"]["Attributes"]["name"] == "one" and wire["status"] == "create"
    assert wire["from"] == "busybox" and wire["timeNano"] // 10**9 == wire["time"]


def test_filters_select_type_event_container_and_label():
    async def go():
        bus = EventBus()
        bus.publish("container", "start", "abc123", name="web", image="nginx", tier="front")
        bus.publish("container", "die", "abc123", name="web", image="nginx", exitCode=0)
        bus.publish("image", "pull", "busybox:latest")
        want = {"type": ["container"], "event": ["die"], "container": ["web"]}
        got = await _take(bus.stream(since=0, until=time.time() + 0.2, filters=want), 1)
        labelled = bus.stream(since=0, until=time.time(), filters={"label": ["tier=front"]})
        return got, [e async for e in labelled]

    got, labelled = asyncio.run(go())
    assert [e.action for e in got] == ["die"]
    assert [e.action for e in labelled] == ["start"]


def test_until_in_the_past_ends_after_history():
    async def go():
        bus = EventBus()
        bus.publish("container", "create", "c1")
        return [e async for e in bus.stream(since=0, until=time.time())]

    assert [e.action for e in asyncio.run(go())] == ["create"]


def test_a_subscriber_that_does_not_read_is_cut_off_not_grown():
    async def go():
        bus = EventBus()
        stream = bus.stream()
        first = asyncio.create_task(_take(stream, 1))
        await asyncio.sleep(0.01)
        for i in range(QUEUE * 3):
            bus.publish("container", "start", f"c{i}")
        got = await asyncio.wait_for(first, 2)
        rest = [e async for e in stream]  # what its queue held, then the end
        return got, rest, len(bus._subscribers)

    got, rest, subscribers = asyncio.run(go())
    assert got[0].actor == "c0" and subscribers == 0
    assert len(rest) == QUEUE - 1 and rest[-1].actor == f"c{QUEUE - 1}"
