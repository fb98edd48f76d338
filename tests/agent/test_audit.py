"""The agent's hash-chained audit log (acceptance 6): any edited line is found and named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.audit import AgentLog, verify_log
from tests.support.timeouts import scaled

EVENTS = [
    "Technician Ana Lopez (verified: Acme IT, certificate 12ab34cd) connected for ticket HD-1.",
    "You allowed: Diagnostics.",
    "Sent to the technician: Diagnostics result (4096 bytes).",
    'Running fix disk-cleanup 1.0.0 (run), values {"days": "0"}, café ünïcode.',
    "Fix disk-cleanup 1.0.0 (run) finished: exit status 0.",
    "Log closed.",
]


def write_log(path: Path) -> Path:
    log = AgentLog(path)
    for event in EVENTS[:3]:
        log.write(event)
    log.close()
    log = AgentLog(path)  # reopening continues the same chain
    for event in EVENTS[3:]:
        log.write(event)
    log.close()
    return path


def audit_verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "audit", "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )


def test_intact_log_verifies(tmp_path: Path) -> None:
    path = write_log(tmp_path / "session.log")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(EVENTS)
    entries = [json.loads(line) for line in lines]
    assert [e["event"] for e in entries] == EVENTS  # human-readable, one event per line
    assert [e["n"] for e in entries] == list(range(1, len(EVENTS) + 1))
    assert all(b["prev"] == a["hash"] for a, b in zip(entries, entries[1:], strict=False))
    verdict = verify_log(path)
    assert verdict.ok and verdict.entries == len(EVENTS)
    done = audit_verify(path)
    assert done.returncode == 0 and done.stdout.startswith(f"OK: {path} is intact (6 entries")


def edits(line: str) -> list[str]:
    """Different ways someone might edit one line."""
    entry = json.loads(line)
    start = line.index('"event": "') + len('"event": "')
    return [
        line[:start] + ("X" if line[start] != "X" else "Y") + line[start + 1 :],  # reworded
        line.replace(entry["time"], "2020-01-01 00:00:00 +0000"),  # back-dated
        line.replace('", "prev"', '",  "prev"'),  # one extra space
        line[:-3] + ("0" if line[-3] != "0" else "1") + line[-2:],  # its own hash
    ]


@pytest.mark.parametrize("number", range(1, len(EVENTS) + 1))
def test_editing_any_line_is_found_and_named(tmp_path: Path, number: int) -> None:
    path = write_log(tmp_path / "session.log")
    original = path.read_text(encoding="utf-8").splitlines()
    for edited in edits(original[number - 1]):
        assert edited != original[number - 1]
        lines = list(original)
        lines[number - 1] = edited
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        verdict = verify_log(path)
        assert verdict.broken_line == number, (edited, verdict)
        assert verdict.entries == number - 1
    done = audit_verify(path)
    assert done.returncode == 1
    assert f"BROKEN: {path}, line {number}: entry {number}" in done.stdout


def test_removed_or_inserted_lines_are_found(tmp_path: Path) -> None:
    path = write_log(tmp_path / "session.log")
    original = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(original[:2] + original[3:]) + "\n", encoding="utf-8")
    assert verify_log(path).broken_line == 3  # entry 4 now sits where 3 was
    path.write_text("\n".join(original[:2] + [original[1]] + original[2:]) + "\n")
    assert verify_log(path).broken_line == 3  # a duplicated entry
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "audit", "verify", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["broken_line"] == 3


def test_unreadable_log_is_a_clear_error(tmp_path: Path) -> None:
    done = audit_verify(tmp_path / "missing.log")
    assert done.returncode == 1
    assert "Cannot read" in done.stderr and "check the path" in done.stderr
