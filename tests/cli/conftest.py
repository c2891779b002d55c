"""Fixtures for the CLI's unit tests (no daemon: tests/daemon drives a real one)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner


@pytest.fixture
def runner():
    return CliRunner()
