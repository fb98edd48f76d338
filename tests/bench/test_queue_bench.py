"""bench/queue_day.py still runs end to end: a tiny day, no timed assertion (the figures of
such a short run mean nothing; only that the report comes out whole)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]


def test_queue_benchmark_tiny_day_reports_every_figure() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "queue_day.py"), "--requests", "40", "--hours", "0.5"]
        + ["--technicians", "4", "--queued", "30", "--json"],
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for side in ("skills", "fifo_peer"):
        figures = report[side]
        assert figures["served"] + figures["unserved"] == 40
        for key in ("median_wait_s", "p90_wait_s", "estimate_median_abs_error_s"):
            assert figures[key] is not None and figures[key] >= 0
        assert 0 <= figures["skill_match_share"] <= 1
    cost = report["routing_cost_at_queued"]
    assert cost["queued"] == 30 and cost["route_ms"] > 0 and cost["dispatch_ms"] > 0
