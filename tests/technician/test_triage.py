"""Knowledge base and triage (acceptance 4): a nearly full disk is named, with the disk
clean-up fix suggested first; past cases (a real SQLite file) reorder suggestions.

The snapshots are real ones of this machine (``agent.capabilities.diagnostics.collection.collect``), edited to
describe the broken machine (the issue allows recorded diagnostics).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent.capabilities.diagnostics.collection import collect
from technician.outcomes import OutcomeStore
from technician.triage import RuleError, load_rules, rank, triage
from tests.support.timeouts import scaled

GIB = 1024**3


@pytest.fixture(scope="module")
def snapshot() -> dict[str, Any]:
    """A real snapshot of this machine, made healthy where this machine might not be."""
    data = collect(sample_seconds=0, dns_names=["localhost"], log_lines=0)
    for disk in data["disks"]:
        disk.update(total=100 * GIB, used=40 * GIB, free=60 * GIB, percent=40.0)
    data["memory"].update(percent=35.0)
    data["processes"]["top_cpu"] = [
        {**p, "cpu_percent": 1.0} for p in data["processes"]["top_cpu"][:3]
    ]
    data["processes"]["top_memory"] = [
        {**p, "memory_percent": 1.0} for p in data["processes"]["top_memory"][:3]
    ]
    data["pending_reboot"] = {"detected": False, "reasons": [], "checked": []}
    data["clock"]["synchronized"] = True
    data["network"]["default_gateway"] = {"address": "10.0.0.1", "interface": "eth0"}
    return data


def full_disk(snapshot: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(snapshot)
    root = next(d for d in data["disks"] if d["mountpoint"] == "/")
    root.update(total=64 * GIB, used=int(62.5 * GIB), free=int(1.5 * GIB), percent=97.7)
    return data


def test_healthy_snapshot_has_no_findings(snapshot: dict[str, Any]) -> None:
    assert triage(snapshot, load_rules()) == []


def test_nearly_full_disk_suggests_cleanup_first(snapshot: dict[str, Any], tmp_path: Path) -> None:
    findings = triage(full_disk(snapshot), load_rules())
    [disk] = [f for f in findings if f.problem == "disk-nearly-full"]
    assert disk.severity == "high"
    assert disk.evidence == ["/ is 98% full: 1.5 GiB free of 64.0 GiB"]
    assert disk.suggestions[0].fix_id == "disk-cleanup"
    assert disk.suggestions[0].command == "fix disk-cleanup"

    # The command line tool says the same, ranking through a real (empty) past-cases file.
    path = tmp_path / "diagnostics.json"
    path.write_text(json.dumps(full_disk(snapshot)))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "technician.cli",
            "triage",
            str(path),
            "--outcomes",
            str(tmp_path / "outcomes.sqlite3"),
        ],
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = lines.index("[high] disk-nearly-full: A disk is nearly full")
    assert lines[start + 1] == "    evidence: / is 98% full: 1.5 GiB free of 64.0 GiB"
    first = next(line for line in lines[start:] if "suggested" in line)
    assert first == "    suggested 1: fix disk-cleanup   (no past cases)"


def rule_cases(snapshot: dict[str, Any]) -> dict[str, tuple[dict[str, Any], float | None]]:
    """One broken snapshot per known problem (and the technician's clock, if needed)."""
    cases: dict[str, tuple[dict[str, Any], float | None]] = {}

    def case(problem: str, reference: float | None = None) -> dict[str, Any]:
        data = copy.deepcopy(snapshot)
        cases[problem] = (data, reference)
        return data

    case("dns-failing")["network"]["dns"] = [
        {"name": "example.org", "ok": False, "addresses": [], "error": "timed out", "seconds": 2}
    ]
    down = case("network-down")["network"]
    down["default_gateway"] = None
    for interface in down["interfaces"]:
        interface["is_up"] = interface["name"] in ("lo", "lo0")
    utc = datetime.fromisoformat(snapshot["clock"]["utc"]).timestamp()
    case("clock-skewed", reference=utc + 3600)
    case("clock-unsynchronised")["clock"]["synchronized"] = False
    case("runaway-process")["processes"]["top_cpu"] = [
        {"pid": 4242, "name": "spinner", "cpu_percent": 99.5, "memory_percent": 1.0, "rss": 1}
    ]
    case("memory-hog")["processes"]["top_memory"] = [
        {"pid": 777, "name": "leaky", "cpu_percent": 0.0, "memory_percent": 61.0, "rss": 8 * GIB}
    ]
    pressure = case("memory-pressure")
    pressure["memory"]["percent"] = 96.0
    pressure["processes"]["top_memory"][0]["pid"] = 31337
    case("pending-reboot")["pending_reboot"] = {
        "detected": True,
        "reasons": ["Installed updates asked for a restart (linux-image)"],
        "checked": [],
    }
    return cases


def test_every_known_problem_is_recognised(snapshot: dict[str, Any]) -> None:
    rules = load_rules()
    expected_fixes = {
        "dns-failing": "flush-dns",
        "network-down": "renew-network",
        "clock-skewed": "resync-clock",
        "clock-unsynchronised": "resync-clock",
        "runaway-process": "fix end-process pid=4242",
        "memory-hog": "fix end-process pid=777",
        "memory-pressure": "fix end-process pid=31337",
        "pending-reboot": "show-pending-updates",
    }
    for problem, (data, reference) in rule_cases(snapshot).items():
        findings = triage(data, rules, reference_time=reference)
        assert [f.problem for f in findings] == [problem], (problem, findings)
        suggestion = findings[0].suggestions[0]
        assert expected_fixes[problem] in (suggestion.fix_id, suggestion.command), problem
    # Without the technician's clock a recorded snapshot cannot show skew.
    data, _ = rule_cases(snapshot)["clock-skewed"]
    assert triage(data, rules) == []


def test_past_cases_reorder_suggestions(snapshot: dict[str, Any], tmp_path: Path) -> None:
    store = OutcomeStore(tmp_path / "outcomes.sqlite3")
    record = dict(ticket_id="HD-1", problems=["dns-failing"], fix_version="1.0.0", now=1.0)
    for session in ("a", "b", "c"):  # flushing the cache never helped
        store.record(session_id=session, fix_id="flush-dns", exit_status=0, **record)
        store.recheck(session, {"dns-failing"})  # the problem was still there afterwards
    for session in ("d", "e"):  # renewing the connection did
        store.record(session_id=session, fix_id="renew-network", exit_status=0, **record)
        store.recheck(session, set())
    store.record(session_id="f", fix_id="renew-network", exit_status=1, **record)
    data, _ = rule_cases(snapshot)["dns-failing"]
    findings = triage(data, load_rules())
    assert [s.fix_id for s in findings[0].suggestions] == ["flush-dns", "renew-network"]
    ranked = rank(findings, store.history(["dns-failing"]))
    assert [(s.fix_id, s.solved, s.runs) for s in ranked[0].suggestions] == [
        ("renew-network", 2, 3),
        ("flush-dns", 0, 3),
    ]
    store.close()
    # The history is in the file: a new process sees it.
    reopened = OutcomeStore(tmp_path / "outcomes.sqlite3")
    assert reopened.history(["dns-failing"])["dns-failing"]["renew-network"] == (2, 3)
    reopened.close()


def test_extra_rules_are_data_and_checked(snapshot: dict[str, Any], tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.toml").write_text(
        """
[[rule]]
problem = "hostname-unset"
title = "The computer has the default name"
severity = "low"
when = { path = "hostname", op = "matches", value = "." }
evidence = "hostname is {hostname}"
advice = "Name computers after their users."
fixes = []
"""
    )
    findings = triage(snapshot, load_rules([rules]))
    assert [f.problem for f in findings] == ["hostname-unset"]
    (rules / "broken.toml").write_text('[[rule]]\nproblem = "x"\nwhen = { path = "a", op = "~" }\n')
    with pytest.raises(RuleError, match="broken.toml rule 1"):
        load_rules([rules])
