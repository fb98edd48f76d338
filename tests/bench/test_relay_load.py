"""bench/relay_load.py still runs end to end: each mode once with a tiny workload.

No timed assertion: the figures of such short runs mean nothing; only that real relay
processes, a real Redis for ``--nodes 3`` and socat for the peer are driven and the
report comes out whole.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "relay_load.py"), *args, "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=scaled(90),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_stream_mode_against_socat() -> None:
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (apt install socat)")
    out = bench("stream", "--sessions", "4", "--seconds", "1", "--warmup", "0.5")
    assert "socat (peer)" in out and "latency p99" in out
    assert "sessions lost           0" in out
    assert "p99 added latency" in out
    assert "load generator CPU" in out and "upper bound on the latency it adds" in out


def test_stream_mode_pinned() -> None:
    """--pin: the relay on one CPU, the generator on the others (affinity checked)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("--pin needs two CPUs; this machine lets us use one")
    out = bench(
        "stream", "--sessions", "4", "--seconds", "1", "--warmup", "0.5", "--pin", "--no-peer"
    )
    first = sorted(os.sched_getaffinity(0))[0]
    assert f"forwarders on CPU [{first}]" in out
    assert "sessions lost           0" in out and "p99 through the relay" in out


def test_idle_and_churn_modes() -> None:
    out = bench("idle", "--sessions", "6", "--hold", "0")
    assert "per paired session" in out and "lost 0" in out
    out = bench("churn", "--seconds", "3", "--concurrent", "2")
    assert "sessions completed" in out and "failed 0" in out


def test_three_nodes_sharing_redis() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt install redis-server)")
    out = bench(
        "stream",
        "--sessions",
        "3",
        "--seconds",
        "1",
        "--warmup",
        "0.5",
        "--no-peer",
        "--nodes",
        "3",
    )
    assert "3 relay node(s)" in out and "sessions lost           0" in out
