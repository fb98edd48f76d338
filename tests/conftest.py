"""Shared test fixtures: real relay processes on loopback, scaled timeouts.

Helpers live in :mod:`tests.support` (one place for everything tests share); this file
only registers their fixtures. Set ``PUENTE_TEST_TIMEOUT_SCALE`` (a number, default 1)
to stretch every timeout on slow machines.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.relay import RelayProcess, start_relay

#: Fixtures of feature areas, shared by their test modules.
pytest_plugins = ["tests.support.screen_fixtures", "tests.support.device_fixtures"]


@pytest.fixture(autouse=True)
def reap_processes() -> Iterator[None]:
    """End every agent/technician process a test started, and close its pipes."""
    from tests.support import customer

    yield
    while customer.LIVE:
        customer.LIVE.pop().kill()


@pytest.fixture
def relay_process(tmp_path: Path) -> Iterator[RelayProcess]:
    relay = start_relay(tmp_path / "relay-data")
    try:
        yield relay
    finally:
        relay.stop()
