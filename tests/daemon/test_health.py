"""Docker healthchecks in real VMs: starting -> unhealthy -> healthy with the failing streak
and the last five results, health_status events, ps's health filter and status, timeouts,
the start period's grace, probes that are not execs, and no probes once stopped."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.vm
IMG = "busybox"
SECOND = 1_000_000_000


def _health(api, c) -> dict:
    return api.inspect_container(c)["State"]["Health"]


def _wait_for(api, c, check, timeout: float = 90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        h = _health(api, c)
        if check(h):
            return h
        time.sleep(0.3)
    raise AssertionError(f"health never got there: {h}")


def _run(api, test, **hc):
    c = api.create_container(
        IMG,
        ["sleep", "600"],
        labels={"test": "health"},
        healthcheck={"test": test, "interval": SECOND, "retries": 1, **hc},
    )
    api.start(c)
    return c


def test_healthchecks(api):
    since = int(time.time())
    slow = _run(api, "sleep 30", timeout=SECOND)
    grace = _run(api, "exit 1", start_period=600 * SECOND)
    # fails twice, then passes: starting -> unhealthy -> healthy
    flaky = _run(api, "echo x >> /count; test $(wc -l < /count) -ge 3")

    h = _wait_for(api, flaky, lambda h: h["Status"] == "healthy")
    assert h["FailingStreak"] == 0
    assert [r["ExitCode"] for r in h["Log"]][:3] == [1, 1, 0]
    assert all(r["Start"] <= r["End"] for r in h["Log"])
    _wait_for(api, flaky, lambda h: len(h["Log"]) == 5)
    assert len(_wait_for(api, flaky, lambda h: h["Log"][0]["ExitCode"] == 0)["Log"]) == 5

    h = _wait_for(api, slow, lambda h: h["Status"] == "unhealthy")
    assert h["Log"][0]["ExitCode"] == -1
    assert h["Log"][0]["Output"] == "Health check exceeded timeout (1s)"

    h = _wait_for(api, grace, lambda h: len(h["Log"]) >= 3)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 0)

    ps = {c["Id"]: c["Status"] for c in api.containers(filters={"label": "test=health"})}
    assert ps[flaky["Id"]].endswith("(healthy)") and ps[grace["Id"]].endswith("(health: starting)")
    healthy = api.containers(filters={"health": "healthy", "label": "test=health"})
    assert [c["Id"] for c in healthy] == [flaky["Id"]]
    assert api.inspect_container(flaky)["ExecIDs"] is None  # probes are not execs

    events = api.events(
        since=since, until=int(time.time()) + 1, decode=True, filters={"container": flaky["Id"]}
    )
    actions = [e["Action"] for e in events if e["Action"].startswith("health_status")]
    assert actions == ["health_status: unhealthy", "health_status: healthy"]

    api.stop(flaky, timeout=0)
    logged = _health(api, flaky)["Log"]
    time.sleep(3)
    assert _health(api, flaky)["Log"] == logged  # no probe once stopped


def test_none_disables_the_images_healthcheck(api):
    c = api.create_container(IMG, "true", healthcheck={"test": ["NONE"]})
    try:
        assert "Health" not in api.inspect_container(c)["State"]
    finally:
        api.remove_container(c)
