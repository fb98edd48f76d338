"""The relay raises its own open-file limit to what max_connections needs (up to the
hard limit the operator set), then fits max_connections under what it got."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

from tests.support.timeouts import scaled

PROBE = """
import json, resource
from relay.config import RelayConfig, fit_open_file_limit, open_files_needed
config = RelayConfig(data_dir="unused", max_connections={connections})
fitted = fit_open_file_limit(config)
print(json.dumps([resource.getrlimit(resource.RLIMIT_NOFILE)[0], fitted.max_connections,
                  open_files_needed(config)]))
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
    # 2,000 connections need 4,064 descriptors: raised from 1,024, nothing lowered.
    assert probe(2000, 1024, hard) == [4064, 2000, 4064]
    # Past the hard limit: the soft limit reaches it and max_connections fits under it.
    soft, fitted, needed = probe(10_000, 1024, hard)
    assert soft == hard and needed == 20_064 and fitted == (hard - 64) // 2
