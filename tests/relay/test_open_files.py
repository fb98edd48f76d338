"""The relay raises its own open-file limit to what max_connections needs (up to the
hard limit the operator set), then fits max_connections under what it got."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from tests.support.timeouts import scaled

PROBE = """
import json, resource
from relay.config import RelayConfig, fit_open_file_limit, open_files_needed
config = RelayConfig(data_dir="unused", max_connections={connections})
fitted = fit_open_file_limit(config)
print(json.dumps([resource.getrlimit(resource.RLIMIT_NOFILE)[0], fitted.max_connections,
                  fitted.max_handshakes, open_files_needed(config)]))
"""


def probe(connections: int, soft: int, hard: int) -> list[int]:
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(connections=connections)],
        capture_output=True,
        text=True,
        timeout=scaled(30),
        preexec_fn=lower,
        check=True,
    )
    return list(json.loads(done.stdout))


def test_the_soft_limit_rises_to_what_the_connections_need() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    # 2,000 connections + 200 handshakes + 64 reserved: raised from 1,024, nothing lowered.
    assert probe(2000, 1024, hard) == [2264, 2000, 200, 2264]
    # Past the hard limit: the soft limit reaches it and max_connections fits under it,
    # the handshakes keeping their budget (a tenth of 10,000).
    soft, fitted, handshakes, needed = probe(10_000, 1024, hard)
    assert soft == hard and needed == 11_064
    assert handshakes == 1000 and fitted == hard - 64 - 1000


def test_ten_thousand_devices_fit_a_hard_limit_of_twenty_thousand() -> None:
    """The sandbox this was measured in: the half-open budget no longer halves capacity."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 11_064:
        pytest.skip("this machine's hard open-file limit is under 11,064")
    assert probe(10_000, 1024, hard)[1:] == [10_000, 1000, 11_064]


def test_a_tiny_limit_shares_what_is_left_between_connections_and_handshakes() -> None:
    soft, fitted, handshakes, _ = probe(10_000, 200, 200)
    assert soft == 200 and handshakes == 68 and fitted == 68
