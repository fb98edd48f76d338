"""Issue 6 end to end: real relay processes, the real agent and puente-tech, a real webhook.

* Acceptance 1: creating a session for a ticket delivers the join link to the
  webhook (signature verified), and ending it delivers the summary with the rating
  the scripted customer gave.
* Acceptance 2: the relay is killed while the receiver is down; once both are back,
  every pending event is delivered and each idempotency key is processed once.
* Acceptance 4 (content half): neither the summary, the audit log nor anything else
  the relay keeps holds the session's content.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from relay.sqlite_store import SQLiteStore
from tests.relay.test_cli import rest
from tests.support.customer import Process, ScriptedCustomer, technician
from tests.support.helpdesk import WebhookReceiver, wait_until
from tests.support.relay import RelayProcess, start_relay
from tests.support.timeouts import scaled

CODE_LINE = r"^code: (\d{3,9}-\d{3}-\d{3})$"
SECRET = "help-desk-webhook-secret-42"


def relay_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay.cli", *args],
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )


def pending_deliveries(data_dir: Path) -> list[dict[str, Any]]:
    result = relay_cli("deliveries", "--data-dir", str(data_dir), "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_join_link_and_rated_summary_reach_the_webhook(tmp_path: Path) -> None:
    with WebhookReceiver(SECRET) as receiver:
        # The URL from a flag, the secret from the environment, as a container would.
        relay = start_relay(
            tmp_path / "relay", "--webhook", receiver.url, env={"PUENTE_WEBHOOK_SECRET": SECRET}
        )
        try:
            token = relay.add_technician("Ana Technician")
            out = tmp_path / "diag.json"
            tech = technician(
                relay.ws_url,
                token,
                "diagnostics",
                "--ticket",
                "T-42",
                "--ticket-url",
                "https://desk.example.com/tickets/42",
                "--out",
                str(out),
            )
            code = tech.expect(CODE_LINE).group(1)
            nameplate = code.split("-")[0]
            join_line = tech.expect(r"^Join page for the customer .*: (\S+)$").group(1)

            [created] = receiver.wait_for("session.created")
            session = created["session"]
            assert session["ticket_id"] == "T-42"
            assert session["ticket_url"] == "https://desk.example.com/tickets/42"
            assert session["technician"] == "Ana Technician"
            # The link is the session's random id, never the nameplate (issue 15).
            assert (
                session["join_url"] == join_line == f"{relay.http_url}/join/{session['session_id']}"
            )
            assert f"/join/{nameplate}" not in join_line
            # The join page the help desk got works for the customer, without the secret.
            with urllib.request.urlopen(session["join_url"], timeout=scaled(10)) as page:
                html = page.read().decode()
            assert "Ana Technician" in html and "T-42" in html and f"{nameplate}-" in html
            assert code not in html and code.replace("-", "")[-6:] not in html

            customer = ScriptedCustomer(
                relay.ws_url,
                code,
                tmp_path / "logs",
                answers={"Diagnostics": "y"},
                rating=4,
                comment="Quick and kind, thank you",
            )
            assert tech.wait(60) == 0, tech.output + tech.stderr
            assert customer.wait(30) == 0, customer.output + customer.stderr
            assert customer.rating_asked
            assert 'Customer rating: 4/5 "Quick and kind, thank you"' in tech.output
            assert "Session summary sent to the relay for ticket T-42." in tech.output

            [event] = receiver.wait_for("session.summary")
            summary = event["summary"]
            assert summary["rating"] == {"score": 4, "comment": "Quick and kind, thank you"}
            assert summary["technician"] == "Ana Technician"
            assert summary["ended_by"] == "technician"
            assert [(c["capability"], c["state"]) for c in summary["consents"]] == [
                ("diagnostics", "granted")
            ]
            assert summary["diagnostics"][
                "facts"
            ]  # the digest, from protocol.diagnostics_facts.summarize
            assert summary["fixes"] == [] and summary["files"] == []
            assert event["session"]["session_id"] == session["session_id"]
            receiver.wait_for("session.ended")
            assert receiver.rejected_signatures == 0  # every delivery carried a valid HMAC
            for delivery in receiver.deliveries:
                assert delivery.headers["X-Puente-Event"] == delivery.event["type"]
            # Events carry their audit anchors, in order.
            seqs = [e["audit"]["seq"] for e in receiver.processed.values()]
            assert len(set(seqs)) == len(seqs)

            # The technician finds the session and its summary under the ticket.
            listing = technician(relay.ws_url, token, "sessions", "--ticket", "T-42")
            assert listing.wait() == 0, listing.stderr
            assert "Ticket T-42: 1 session" in listing.output
            assert "rating 4/5" in listing.output
            assert 'Customer rating: 4/5 - "Quick and kind, thank you"' in listing.output
            assert "diagnostics granted" in listing.output
            as_json = technician(relay.ws_url, token, "--json", "sessions", "--ticket", "T-42")
            assert as_json.wait() == 0
            [listed] = json.loads(as_json.output)["sessions"]
            assert listed["summary"] == summary
            assert relay_cli("audit", "verify", "--data-dir", str(relay.data_dir)).returncode == 0
        finally:
            relay.stop()


def test_relay_killed_while_the_receiver_is_down_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    data = tmp_path / "relay"
    receiver = WebhookReceiver(SECRET)  # not started: the help desk is down
    flags = ("--webhook", receiver.url, "--webhook-secret", SECRET, "--retry-max", "1")
    relay = start_relay(data, *flags)
    try:
        token = relay.add_technician()
        first = rest(relay, "POST", "/api/sessions", token, {"ticket_id": "T-1"})[1]
        second = rest(relay, "POST", "/api/sessions", token, {"ticket_id": "T-2"})[1]
        assert rest(relay, "DELETE", f"/api/sessions/{second['session_id']}", token)[0] == 200
        # Both "created" events were tried and failed; T-2's "ended" waits behind its
        # "created", so that the ticket sees its events in order.
        wait_until(
            lambda: (
                sorted((d["type"], d["attempts"] >= 1) for d in pending_deliveries(data))
                == [("session.created", True), ("session.created", True), ("session.ended", False)]
            ),
            20,
            "failed attempts at both created events",
        )
        assert "could not reach" in pending_deliveries(data)[0]["last_error"]
        relay.proc.kill()  # SIGKILL: no chance to finish anything
        relay.stop()
    finally:
        relay.stop()
    expected = {d["event_id"]: d["type"] for d in pending_deliveries(data)}
    assert sorted(expected.values()) == ["session.created", "session.created", "session.ended"]

    # The help desk comes back, but its first acknowledgement is lost on the way.
    receiver.lose_ack_for_first = 1
    with receiver:
        relay = start_relay(data, *flags)
        try:
            wait_until(lambda: not pending_deliveries(data), 20, "every pending event delivered")
            assert set(receiver.processed) == set(expected)
            assert all(count == 1 for count in receiver.process_count.values())
            received = Counter(d.key for d in receiver.deliveries)
            assert sorted(received.values()) == [1, 1, 2]  # one resent, processed once
            tickets = {e["session"]["ticket_id"] for e in receiver.processed.values()}
            assert tickets == {"T-1", "T-2"}
            assert first["session_id"] in {
                e["session"]["session_id"] for e in receiver.processed.values()
            }
            assert receiver.rejected_signatures == 0
        finally:
            logs = relay.stop()
    assert "retrying 3 pending deliveries now" in logs
    verified = relay_cli("audit", "verify", "--data-dir", str(data))
    assert verified.returncode == 0, verified.stderr


def test_summary_and_audit_log_hold_no_session_content(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    token = relay_process.add_technician("Ana Technician")
    tech = Process(
        [
            sys.executable,
            "-m",
            "technician.cli",
            "--relay",
            relay_process.ws_url,
            "--token",
            token,
            "session",
            "--ticket",
            "HD-77",
        ],
        stdin=True,
    )
    code = tech.expect(CODE_LINE).group(1)
    customer = ScriptedCustomer(
        relay_process.ws_url,
        code,
        tmp_path / "logs",
        answers={"Diagnostics": "y"},
        after={r"^Technician says: ": "typed-by-customer-canary-5e1d"},
        rating=2,
    )
    tech.expect(r"Check code")
    canary = "chat-canary-c0ffee-9b1"
    tech.send(f"chat {canary}")
    customer.expect(canary)
    # The customer's typing is handled before the next question, so it answers nothing.
    customer.expect(r"Unknown command 'typed-by-customer-canary-5e1d'")
    diagnostics_file = tmp_path / "d.json"
    tech.send(f"diagnostics {diagnostics_file}")
    tech.expect(r"^ok diagnostics")
    tech.send("end")
    tech.expect(r"^ok end")
    assert tech.wait() == 0, tech.output + tech.stderr
    assert customer.wait() == 0
    assert "Customer rating: 2/5" in tech.output

    sessions = rest(relay_process, "GET", "/api/sessions?ticket_id=HD-77", token)[1]["sessions"]
    summary = sessions[0]["summary"]
    assert summary["rating"] == {"score": 2, "comment": ""}
    export = tmp_path / "audit.jsonl"
    result = relay_cli(
        "audit", "export", "--data-dir", str(relay_process.data_dir), "--out", str(export)
    )
    assert result.returncode == 0, result.stderr
    audit_text = export.read_text()
    types = [json.loads(line)["type"] for line in audit_text.splitlines()]
    assert types[:2] == ["session.created", "session.paired"]
    assert {"session.ended", "session.summary"} <= set(types)

    data = json.loads(diagnostics_file.read_text())
    content = [canary, "typed-by-customer-canary-5e1d", code]
    content += [
        value
        for value in (
            data.get("cpu", {}).get("model"),
            data.get("os", {}).get("version"),
            data.get("uptime", {}).get("boot_time"),
        )
        if isinstance(value, str) and len(value) >= 6
    ]
    content += [line for line in data.get("system_log", {}).get("lines", []) if len(line) >= 12][
        :20
    ]
    summary_text = json.dumps(summary)
    relay_files = b"".join(p.read_bytes() for p in relay_process.data_dir.rglob("*") if p.is_file())
    for needle in content:
        assert needle not in summary_text, f"{needle!r} is in the summary"
        assert needle not in audit_text, f"{needle!r} is in the audit log"
        assert needle.encode() not in relay_files, f"{needle!r} is in the relay's files"
    # The audit log keeps only a digest of the summary, never the summary itself.
    [stored] = [json.loads(line) for line in audit_text.splitlines() if '"session.summary"' in line]
    assert set(stored["data"]) == {"session", "summary_sha256", "summary_bytes"}
    database = sqlite3.connect(relay_process.data_dir / "relay.sqlite3")
    try:
        tables = {row[0] for row in database.execute("SELECT name FROM sqlite_master")}
    finally:
        database.close()
    assert "summaries" in tables
    store = SQLiteStore(relay_process.data_dir)
    try:
        assert store.get_summary(sessions[0]["session_id"]) is not None
    finally:
        store.close()
