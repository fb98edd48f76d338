"""The benchmarks still run end to end: a tiny workload, no timed assertion.

The figures of such a short run mean nothing; only that every measurement is made
through real processes and the report comes out whole.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpdesk import rt_missing
from tests.support.timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]


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


def test_ssh_benchmark_tiny_run_reports_every_row() -> None:
    if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
        pytest.skip("needs Debian's openssh-server for the direct scp peer")
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ssh_throughput.py"), "--size-mb", "1"]
        + ["--runs", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert len(report["mb_per_s"]) == 8
    assert set(report["ratio"]) >= {
        "puente put (SFTP in the tunnel)",
        "puente get (SFTP in the tunnel)",
    }


def test_screen_benchmark_tiny_run_reports_every_goal() -> None:
    """bench/screen_vs_vnc.py: both systems through every scene, the report whole."""
    for program, package in (
        ("Xvfb", "xvfb"),
        ("x11vnc", "x11vnc"),
        ("xtigervncviewer", "tigervnc-viewer"),
    ):
        if shutil.which(program) is None:
            pytest.skip(f"{program} is not installed (apt-get install {package})")
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "screen_vs_vnc.py")]
        + ["--seconds", "0.3", "--clicks", "2"],
        capture_output=True,
        text=True,
        timeout=scaled(180),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = result.stdout
    for scene in ("static", "typing", "scroll", "drag", "slideshow", "video"):
        assert f"- {scene}: bytes" in report, report
    goals = report.split("Goals:", 1)[1]
    assert goals.count(", met") + goals.count(", NOT met") == 6, report


def test_pairing_benchmark_quick_run_reports_every_kind() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "pairing.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["results"]) == {
        "code flow (SPAKE2)",
        "code-less, anonymous agent",
        "code-less, device key",
    }
    assert report["results"]["code flow (SPAKE2)"]["ratio"] == 1.0


def test_downloads_benchmark_quick_run_compares_with_no_downloads() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "downloads.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["downloads"] > 0 and figures["refused"] == 0
    assert figures["round_trips"]["quiet"] > 0 and figures["round_trips"]["downloading"] > 0
    assert {"added_p99_ms", "p99_ratio", "relay_rss_mb"} <= set(figures)


def test_viewer_benchmark_tiny_run_reports_both_goals() -> None:
    """bench/viewer.py: the real viewer, relay and agent on Xvfb; both phases measured."""
    pytest.importorskip("PySide6", reason="the viewer extra (PySide6) is not installed")
    if shutil.which("Xvfb") is None:
        pytest.skip("needs Xvfb (Debian package xvfb)")
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "viewer.py"), "--seconds", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=scaled(180),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    for phase in ("idle", "streaming"):
        assert report[phase]["inputs"] > 10
        assert report[phase]["latency_p95_ms"] >= 0 and report[phase]["stall_max_ms"] >= 0
    assert report["streaming"]["frames_painted_per_s"] > 0


def devices_quick_run(*extra: str, timeout: float) -> dict[str, Any]:
    """``bench/devices.py --quick --json EXTRA``'s figures, once it exits 0."""
    command = [sys.executable, str(ROOT / "bench" / "devices.py"), "--quick", "--json", *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=scaled(timeout))
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_devices_benchmark_quick_run_measures_relay_and_peer() -> None:
    figures = devices_quick_run(timeout=180)
    for side in ("relay", "peer"):
        assert figures[side]["devices"] == 100 and figures[side]["failed_to_connect"] == 0
        assert {"bytes_per_device", "cpu_percent_30s", "cpu_percent_3s"} <= set(figures[side])
    alerts = figures["alerts"]["stand-in"]
    assert alerts["failing_results"] == alerts["tickets"] > 0 and alerts["p99_s"] is not None
    assert "rt" not in figures["alerts"]  # --quick leaves the real RT out unless asked


def test_devices_benchmark_quick_run_opens_tickets_in_the_real_request_tracker() -> None:
    missing = rt_missing()
    if missing is not None:
        pytest.skip(missing)
    figures = devices_quick_run("--rt", "real", "--no-peer", timeout=240)
    alerts = figures["alerts"]
    assert set(alerts) == {"rt"}
    rt = alerts["rt"]
    assert rt["failing_results"] == rt["tickets"] > 0
    # Each alert's own RT call (its creation) is timed and part of its latency; a first
    # attempt does not search RT (relay/alert_delivery.py, rule 4).
    assert 0 < rt["in_rt_p50_s"] <= rt["p50_s"]
    assert rt["rest_calls"] == rt["tickets"] and rt["searches"] == 0
    assert 1 <= rt["most_calls_in_flight"] <= figures["delivery_workers"]
    assert figures["request_tracker"]["workers"] >= 1


def test_device_store_benchmark_quick_run_measures_both_stores() -> None:
    command = [sys.executable, str(ROOT / "bench" / "device_store.py"), "--quick", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=scaled(120))
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["devices"] == 100
    stores = ["sqlite"] + (["postgresql"] if figures["postgresql"] is not None else [])
    for store in stores:
        assert set(figures[store]) == {
            "enrol", "results ok", "results failing", "presence pass", "connect", "lease",
        }  # fmt: skip
        assert all(value > 0 for value in figures[store].values())


def test_rt_concurrency_benchmark_measures_request_tracker_one_and_two_at_once() -> None:
    missing = rt_missing()
    if missing is not None:
        pytest.skip(missing)
    command = [
        sys.executable,
        str(ROOT / "bench" / "rt_concurrency.py"),
        *("--at", "1,2", "--calls", "2", "--rounds", "1", "--rt-workers", "2", "--json"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=scaled(180))
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["rt_worker_processes"] == 2  # --rt-workers reaches Starlet
    assert set(figures["levels"]) == {"1", "2"}
    assert figures["levels"]["1"]["ratio_to_first"] == 1.0
    assert all(row["creations_per_s"] > 0 for row in figures["levels"].values())
    assert all(row["rt_cpu_s_per_creation"] > 0 for row in figures["levels"].values())
