"""bench/relay_throughput.py still runs end to end: a tiny workload, no timed assertion.

The figures of such a short run mean nothing; only that every measurement is made
through real processes and the report comes out whole.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import scaled

ROOT = Path(__file__).resolve().parents[1]


def test_relay_benchmark_quick_run_prints_its_table() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "relay_throughput.py"),
            "--quick",
            "--duration",
            "0.05",
            "--pings",
            "20",
            "--sessions",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert result.returncode == 0, result.stderr
    table = result.stdout
    for heading in ("Throughput:", "Latency:", "Memory: 4 idle paired sessions", "Goals"):
        assert heading in table, table
    for peer in ("raw asyncio fwd (streams)", "puente relay", "direct (no middle box)"):
        assert table.count(peer) == 2, table  # one row in each of the two tables
    assert table.count("[met   ]") + table.count("[MISSED]") == 4, table
