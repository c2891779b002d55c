"""docker-py's low-level client on the shared daemon, for a module of tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def api(daemon):
    """An APIClient; the containers the module made are removed after it."""
    client = daemon.client().api
    before = {c["Id"] for c in client.containers(all=True)}
    yield client
    for c in client.containers(all=True):
        if c["Id"] not in before:
            client.remove_container(c["Id"], force=True)
    client.close()
