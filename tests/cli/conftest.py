"""Fixtures for the CLI's tests: click-free runs of `hyper`, and a bare real daemon."""

from __future__ import annotations

import pytest
from click.testing import CliRunner


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def bare_hyperd(hyperd):
    """A real hyperd (the session's shared one): enough for requests that boot no VM."""
    return hyperd
