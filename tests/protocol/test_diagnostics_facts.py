"""Tests of protocol.diagnostics_facts: the digest of an (untrusted) diagnostics document."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.diagnostics_facts import summarize


def test_summarize_names_the_problems() -> None:
    gib = 1024**3
    diagnostics_dict = {
        "os": {"system": "Linux", "machine": "x86_64", "pretty_name": "Ubuntu 24.04 LTS"},
        "uptime": {"seconds": 40 * 86400},
        "memory": {"total": 8 * gib, "available": 1.5 * gib, "used": 6.5 * gib,
                   "percent": 81.0, "swap_total": 0, "swap_used": 0},
        "disks": [{"device": "/dev/sda1", "mountpoint": "/", "fstype": "ext4",
                   "total": 30 * gib, "used": 27.9 * gib, "free": 2.1 * gib, "percent": 93.0}],
        "network": {"interfaces": [], "default_gateway": None,
                    "dns": [{"name": "example.com", "ok": False, "addresses": [],
                             "error": "no answer within 2 s", "seconds": 2.0}]},
        "clock": {"synchronized": False},
        "pending_reboot": {"detected": True, "reasons": []},
        "processes": {"error": "AccessDenied"},
    }  # fmt: skip
    facts = summarize(diagnostics_dict)
    assert "Disk / is 93% full (2.1 GB free)" in facts
    assert "Memory 81% used (1.5 GB available)" in facts
    assert "DNS lookup of example.com failed (no answer within 2 s)" in facts
    assert "Reboot pending" in facts
    assert "Clock is not synchronized with a time server" in facts
    assert "Could not collect processes" in facts
    assert facts[0].startswith("Ubuntu 24.04 LTS on x86_64, up 40 days")


@pytest.mark.parametrize(
    "garbage",
    [{}, {"disks": "full"}, {"memory": {"percent": "lots"}}, {"network": {"dns": [None, 3]}},
     {"os": [], "cpu": {"load_average": "high"}, "processes": {"top_cpu": [{"pid": 1}]}}],
)  # fmt: skip
def test_summarize_never_raises_on_malformed_input(garbage: dict[str, Any]) -> None:
    assert all(isinstance(fact, str) for fact in summarize(garbage))
