"""Acceptance 5: schemathesis fuzzes the documented REST API of a live relay: no 5xx.

It reads ``/openapi.json`` from a real relay process, authenticates with a real
technician token, and runs its coverage, fuzzing and stateful phases (sessions
created by POST are fed to the routes that take a session id). Besides "no server
error", responses must match the document: status codes, content types, headers
and bodies. Left out on purpose, because the API's design differs from what they
assume: ``use_after_free`` and ``ensure_resource_availability`` (DELETE ends a
session, it stays readable; a new session has no summary until one is uploaded) and
``positive_data_acceptance`` (a schema-valid join link can be 410 Gone once used).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from relay.openapi import OPENAPI
from tests.support.relay import start_relay
from tests.support.timeouts import scaled

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
        "ignored_auth",
    ]
)


def test_schemathesis_finds_no_server_errors(tmp_path: Path) -> None:
    # WARNING: a thousand requests logged at INFO would fill the unread stderr pipe.
    relay_process = start_relay(tmp_path / "relay", "--log-level", "WARNING")
    try:
        token = relay_process.add_technician("Fuzz Technician")
        result = _fuzz(relay_process.http_url, token, tmp_path)
    finally:
        logs = relay_process.stop()
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    selected = re.search(r"Selected: (\d+)/(\d+)", result.stdout)
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert selected and tested, report
    # Every operation was exercised (schemathesis leaves out /openapi.json, its own source).
    operations = sum(len(set(item) - {"parameters"}) for item in OPENAPI["paths"].values())
    assert selected.group(1) == selected.group(2) == tested.group(1), report
    assert int(tested.group(1)) == operations - 1, report
    assert "Server error" not in result.stdout, report
    assert "Traceback" not in logs and "ERROR" not in logs, logs[-4000:]


def _fuzz(base_url: str, token: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{base_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            CHECKS,
            "--max-examples",
            "20",
            "--workers",
            "1",
            "--seed",
            "6",
            "--no-color",
            "--request-timeout",
            str(scaled(10)),
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=scaled(100),
    )
