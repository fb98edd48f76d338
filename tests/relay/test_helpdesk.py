"""The relay's help-desk side in process: summaries, join page, outbox, audit log and CLI."""

from __future__ import annotations

import asyncio
import http.server
import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from relay.config import RelayConfig
from relay.connectors import (
    DeliveryError,
    RequestTrackerConnector,
    WebhookConnector,
    check_connector_url,
)
from relay.errors import ConfigError
from relay.events import EventType
from relay.outbox import DeliverySettings, Outbox
from relay.records import SessionState
from relay.server import RelayServer
from relay.sqlite_store import SQLiteStore
from relay.testing import FakeClock, add_technician, create_session, http_request
from tests.relay.test_events import SUMMARY
from tests.support.helpdesk import WebhookReceiver, free_port
from tests.support.timeouts import scaled

SECRET = "a-shared-webhook-secret"


def run(tmp_path: Path, scenario: Any, **settings: Any) -> None:
    async def main() -> None:
        config = RelayConfig(
            data_dir=tmp_path / "relay", port=0, close_timeout=scaled(1), **settings
        )
        async with RelayServer(config) as relay:
            await scenario(relay)

    asyncio.run(asyncio.wait_for(main(), scaled(30)))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay.cli", *args],
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )


# ---------------------------------------------------------------------------
# summaries over REST
# ---------------------------------------------------------------------------


def test_summary_upload_is_validated_stored_once_and_shown_with_the_session(
    tmp_path: Path,
) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay, "Ana Technician")
        other = add_technician(relay, "Bob")
        session = await create_session(relay, token, "HD-7")
        path = f"/api/sessions/{session['session_id']}/summary"

        early = await http_request(relay, "PUT", path, token=token, json_body=SUMMARY)
        assert early.status == 409 and "Nobody joined" in early.json()["message"]
        relay.store.mark_paired(session["session_id"], relay.config.clock())

        bad = await http_request(relay, "PUT", path, token=token, json_body={**SUMMARY, "x": 1})
        assert bad.status == 400
        assert bad.json()["message"].startswith("The summary is invalid:")
        escape = {**SUMMARY, "end_reason": "done\x1b]0;pwned\x07"}
        refused = await http_request(relay, "PUT", path, token=token, json_body=escape)
        assert refused.status == 400 and "end_reason" in refused.json()["message"]
        huge = {**SUMMARY, "end_reason": "x" * 60_000}
        assert (await http_request(relay, "PUT", path, token=token, json_body=huge)).status == 413
        text = await http_request(
            relay, "PUT", path, token=token, body=b"{}", headers={"Content-Type": "text/plain"}
        )
        assert text.status == 415
        assert (
            await http_request(relay, "PUT", path, token=other, json_body=SUMMARY)
        ).status == 404
        assert (await http_request(relay, "GET", path, token=token)).status == 404

        first = await http_request(relay, "PUT", path, token=token, json_body=SUMMARY)
        assert first.status == 201 and first.json() == SUMMARY
        again = await http_request(relay, "PUT", path, token=token, json_body=SUMMARY)
        assert again.status == 200  # a retry of the same upload is harmless
        changed = {**SUMMARY, "rating": {"score": 5, "comment": "changed my mind"}}
        conflict = await http_request(relay, "PUT", path, token=token, json_body=changed)
        assert conflict.status == 409 and "cannot be changed" in conflict.json()["message"]

        fetched = await http_request(relay, "GET", path, token=token)
        assert fetched.json() == SUMMARY
        listed = await http_request(relay, "GET", "/api/sessions?ticket_id=HD-7", token=token)
        [item] = listed.json()["sessions"]
        assert item["summary"] == SUMMARY and item["summary_uploaded_at"]
        # Only one summary event was recorded, whatever the retries.
        types = [e.type for e in relay.store.audit_entries()]
        assert types.count("session.summary") == 1

    run(tmp_path, scenario)


# ---------------------------------------------------------------------------
# the join page
# ---------------------------------------------------------------------------


def test_join_page_for_waiting_used_and_unknown_codes(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay, "Ana <b>Technician</b>")
        session = await create_session(relay, token, "<script>alert(1)</script>")
        nameplate, join_id = session["nameplate"], session["session_id"]
        # The link is the session's random id, never the nameplate (issue 15).
        assert session["join_url"] == f"http://127.0.0.1:{relay.port}/join/{join_id}"
        assert nameplate not in session["join_url"]
        assert (await http_request(relay, "GET", f"/join/{nameplate}")).status == 404
        page = await http_request(
            relay, "GET", f"/join/{join_id}", headers={"User-Agent": "Mozilla/5.0 (X11; Linux)"}
        )
        assert page.status == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        html = page.body.decode()
        assert "Ana &lt;b&gt;Technician&lt;/b&gt;" in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
        assert f"{nameplate}-" in html
        assert f"ws://127.0.0.1:{relay.port}" in html
        # The visitor's system comes first and is marked as theirs (issue 19).
        assert '<li class="os mine">Linux:' in html
        assert "<strong>(this computer)</strong>" in html

        unknown = "0" * 32
        missing = await http_request(relay, "GET", f"/join/{unknown}")
        assert missing.status == 404 and "No such session" in missing.body.decode()
        await http_request(relay, "DELETE", f"/api/sessions/{session['session_id']}", token=token)
        gone = await http_request(relay, "GET", f"/join/{join_id}")
        assert gone.status == 410 and "no longer works" in gone.body.decode()
        assert (await http_request(relay, "POST", f"/join/{join_id}")).status == 405
        assert (await http_request(relay, "GET", f"/join/{join_id}?code=1")).status == 400

    run(tmp_path, scenario)


def test_join_page_views_are_rate_limited_per_address(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        unknown = "/join/" + "0" * 32
        statuses = [(await http_request(relay, "GET", unknown)).status for _ in range(31)]
        assert statuses[:30] == [404] * 30
        assert statuses[30] == 429

    run(tmp_path, scenario)


# ---------------------------------------------------------------------------
# the outbox: delivered only when acknowledged, with backoff on a fake clock
# ---------------------------------------------------------------------------


def test_outbox_retries_with_backoff_until_the_help_desk_acknowledges(tmp_path: Path) -> None:
    clock = FakeClock()

    async def scenario() -> None:
        store = SQLiteStore(tmp_path)
        technician, _ = store.add_technician("Ana", clock())
        record = store.create_session(technician, "T-1", None, clock(), 600)
        with WebhookReceiver(SECRET) as receiver:
            connector = WebhookConnector(receiver.url, SECRET, timeout=scaled(5), clock=clock)
            # The receiver checks signatures against real time: keep the fake clock near it.
            clock.now = time.time()
            outbox = Outbox(
                store,
                [connector],
                clock,
                lambda: "https://relay.example.com",
                DeliverySettings(backoff_base=2.0, backoff_cap=10.0),
                rand=lambda: 0.0,  # the lowest jitter: delays are cap/2 ... exactly half
            )
            outbox.session_created(record)
            outbox.session_created(record)  # recorded once per session, however often asked
            [pending] = store.list_deliveries()
            receiver.refuse_with = 503
            schedule = []
            for _ in range(5):
                assert await outbox.deliver_due(connector) == 0
                [pending] = store.list_deliveries()
                schedule.append(round(pending.next_attempt_at - clock.now, 3))
                assert await outbox.deliver_due(connector) == 0  # not due yet: no attempt
                clock.advance(pending.next_attempt_at - clock.now)
            assert schedule == [1.0, 2.0, 4.0, 5.0, 5.0]  # doubling, capped (jitter at its floor)
            assert pending.attempts == 5 and "HTTP 503" in (pending.last_error or "")
            assert len(receiver.deliveries) == 5

            receiver.refuse_with = 302  # a redirect is not an acknowledgement
            assert await outbox.deliver_due(connector) == 0
            clock.advance(10)
            receiver.refuse_with = None
            assert await outbox.deliver_due(connector) == 1
            assert store.list_deliveries() == []
            [event] = receiver.processed.values()
            assert event["type"] == "session.created"
            assert event["session"]["join_url"] == f"https://relay.example.com/join/{record.id}"
            [delivery] = store.list_deliveries(pending_only=False)
            assert delivery.attempts == 7 and delivery.delivered_at == clock.now
            acks = [e for e in store.audit_entries() if e.type == "delivery.acknowledged"]
            assert [json.loads(a.data)["event_id"] for a in acks] == [event["id"]]
        store.close()

    asyncio.run(asyncio.wait_for(scenario(), scaled(30)))


def test_wrong_secret_is_refused_by_the_receiver_and_stays_pending(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path)
        technician, _ = store.add_technician("Ana", 1.0)
        record = store.create_session(technician, "T-1", None, 1.0, 600)
        with WebhookReceiver(SECRET) as receiver:
            connector = WebhookConnector(receiver.url, "not-the-shared-secret")
            outbox = Outbox(store, [connector], time.time, lambda: "http://x")
            outbox.session_created(record)
            assert await outbox.deliver_due(connector) == 0
            assert receiver.rejected_signatures == 1 and receiver.processed == {}
            [pending] = store.list_deliveries()
            assert "HTTP 401" in (pending.last_error or "")
        store.close()

    asyncio.run(scenario())


def test_events_of_one_session_are_delivered_in_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path)
        technician, _ = store.add_technician("Ana", 1.0)
        first = store.create_session(technician, "T-1", None, 1.0, 600)
        second = store.create_session(technician, "T-2", None, 1.0, 600)
        with WebhookReceiver(SECRET) as receiver:
            clock = time.time
            connector = WebhookConnector(receiver.url, SECRET)
            outbox = Outbox(store, [connector], clock, lambda: "http://x", rand=lambda: 0.0)
            outbox.session_created(first)
            store.finish_session(first.id, SessionState.ENDED, 2.0, "done")
            outbox.session_ended(first.id)
            outbox.session_created(second)
            receiver.refuse_with = 500
            await outbox.deliver_due(connector)
            # T-1's "ended" waits behind its failed "created"; T-2's own event was tried.
            tried = [d.event["session"]["ticket_id"] for d in receiver.deliveries]
            assert tried == ["T-1", "T-2"]
        store.close()

    asyncio.run(scenario())


def test_relay_delivers_in_the_background_and_reconciles_after_a_crash(tmp_path: Path) -> None:
    with WebhookReceiver(SECRET) as receiver:

        async def first_life(relay: RelayServer) -> None:
            token = add_technician(relay)
            await create_session(relay, token, "T-9")
            await asyncio.to_thread(receiver.wait_for, "session.created")

        run(
            tmp_path,
            first_life,
            connectors=(WebhookConnector(receiver.url, SECRET),),
            delivery=DeliverySettings(poll_interval=0.1),
        )
        # A crash between a session change and its event: the event row is missing.
        store = SQLiteStore(tmp_path / "relay")
        technician = store.list_technicians()[0]
        lost = store.create_session(technician, "T-10", None, time.time(), 600)
        store.close()

        async def second_life(relay: RelayServer) -> None:
            await asyncio.to_thread(receiver.wait_for, "session.created", 2)

        run(
            tmp_path,
            second_life,
            connectors=(WebhookConnector(receiver.url, SECRET),),
            delivery=DeliverySettings(poll_interval=0.1),
        )
        tickets = sorted(e["session"]["ticket_id"] for e in receiver.events("session.created"))
        assert tickets == ["T-10", "T-9"]
        assert lost.id in {e["session"]["session_id"] for e in receiver.events("session.created")}


# ---------------------------------------------------------------------------
# connectors' configuration
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://desk.example.com/hook",
        "ftp://127.0.0.1/x",
        "desk.example.com",
        "https://u:p@h.example/x",
    ],
)
def test_connector_urls_must_be_https_or_loopback(url: str) -> None:
    with pytest.raises(ConfigError):
        check_connector_url(url, "webhook URL")
    assert check_connector_url("http://127.0.0.1:8080/hook/", "x") == "http://127.0.0.1:8080/hook"
    assert check_connector_url("https://desk.example.com/hook", "x")


def test_connector_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        WebhookConnector("https://desk.example.com/h", "short")
    with pytest.raises(ConfigError, match="needs credentials"):
        RequestTrackerConnector("https://rt.example.com")
    with pytest.raises(ConfigError, match="not both"):
        RequestTrackerConnector("https://rt.example.com", token="t", user="u", password="p")


def test_rt_connector_sends_its_token_and_reports_refusals() -> None:
    seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            seen.append({"path": self.path, **dict(self.headers.items())})
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"message":"Message could not be recorded"}'
            self.send_response(400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        connector = RequestTrackerConnector(
            f"http://127.0.0.1:{server.server_address[1]}", token="rt-token-1"
        )
        document = {
            "id": "evt_1",
            "type": EventType.SESSION_CREATED,
            "session": {"ticket_id": "#12", "technician": "Ana", "join_url": "u"},
        }
        with pytest.raises(DeliveryError, match="HTTP 400 for ticket 12: Message could not be"):
            connector.deliver(document, 1)
        assert seen[0]["path"] == "/REST/2.0/ticket/12/comment"
        assert seen[0]["Authorization"] == "token rt-token-1"
        assert connector.wants("session.created", {"ticket_id": "12"})
        assert not connector.wants("session.created", {"ticket_id": "HD-12"})
        assert not connector.wants("session.ended", {"ticket_id": "12"})
    finally:
        server.shutdown()
        server.server_close()
    unreachable = WebhookConnector(f"http://127.0.0.1:{free_port()}/h", SECRET, timeout=2)
    with pytest.raises(DeliveryError, match="could not reach http://127.0.0.1"):
        unreachable.deliver({"id": "evt_2", "type": "session.created"}, 1)


def test_serve_refuses_half_configured_connectors(tmp_path: Path) -> None:
    cases = [
        (["--webhook", "https://desk.example.com/h"], "needs --webhook-secret"),
        (["--webhook-secret", SECRET], "without --webhook"),
        (["--webhook", "http://desk.example.com/h", "--webhook-secret", SECRET], "not encrypted"),
        (["--rt-url", "https://rt.example.com"], "needs credentials"),
        (["--rt-token", "t"], "without --rt-url"),
    ]
    for flags, complaint in cases:
        result = cli("serve", "--data-dir", str(tmp_path), "--port", "0", *flags)
        assert result.returncode == 2, flags
        assert complaint in result.stderr, (flags, result.stderr)
        assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------
# the audit log on disk
# ---------------------------------------------------------------------------


def test_audit_log_is_append_only_and_an_edit_fails_verification(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    technician, _ = store.add_technician("Ana", 1.0)
    outbox = Outbox(store, [], lambda: 1_800_000_000.0, lambda: "https://relay.example.com")
    for ticket in ("T-1", "T-2", "T-3"):
        outbox.session_created(store.create_session(technician, ticket, None, 1.0, 600))
    store.close()

    intact = cli("audit", "verify", "--data-dir", str(tmp_path))
    assert intact.returncode == 0, intact.stderr
    assert "intact: 3 entries" in intact.stdout
    out = tmp_path / "audit.jsonl"
    exported = cli("audit", "export", "--data-dir", str(tmp_path), "--out", str(out))
    assert exported.returncode == 0 and "Exported 3 audit entries" in exported.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]
    assert lines[1]["data"]["session"]["ticket_id"] == "T-2"
    assert lines[2]["prev_hash"] == lines[1]["hash"]

    database = sqlite3.connect(tmp_path / "relay.sqlite3")
    for statement in ("UPDATE audit_log SET data = '{}' WHERE seq = 2", "DELETE FROM audit_log"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            database.execute(statement)
    # Someone with the file drops the guard and rewrites entry 2's ticket.
    database.execute("DROP TRIGGER audit_log_no_update")
    database.execute("UPDATE audit_log SET data = replace(data, 'T-2', 'T-666') WHERE seq = 2")
    database.commit()
    database.close()
    tampered = cli("audit", "verify", "--data-dir", str(tmp_path))
    assert tampered.returncode == 1
    assert "entry 2 was altered" in tampered.stderr
    assert "The 1 entries before it are intact" in tampered.stderr
    as_json = cli("audit", "verify", "--data-dir", str(tmp_path), "--json")
    assert json.loads(as_json.stdout)["bad_seq"] == 2

    nowhere = cli("audit", "verify", "--data-dir", str(tmp_path / "nothing-here"))
    assert nowhere.returncode == 2 and "no relay database" in nowhere.stderr
    assert not (tmp_path / "nothing-here").exists()  # checking never creates a database


def test_an_expired_code_is_recorded_as_ended_once(tmp_path: Path) -> None:
    clock = FakeClock()

    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token, "T-5")
        clock.advance(601)

        def ended() -> list[Any]:
            return [e for e in relay.store.audit_entries() if e.type == "session.ended"]

        while not ended():
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # more housekeeping ticks record nothing more
        [entry] = ended()
        data = json.loads(entry.data)["session"]
        assert data["session_id"] == session["session_id"] and data["state"] == "expired"

    run(tmp_path, scenario, clock=clock, housekeeping_interval=0.02)
