"""Acceptance 3: a real Request Tracker 5 gets the join link and the summary as comments.

The test starts Debian's ``request-tracker5`` itself (``rt-server`` with a private
copy of its SQLite database) and reads the comments back through RT's REST 2.0 API.
CI installs ``request-tracker5 rt5-db-sqlite rt5-standalone``; elsewhere the tests
skip, saying so.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.connectors import DeliveryError, RequestTrackerConnector
from relay.events import EventType
from tests.support.customer import ScriptedCustomer, technician
from tests.support.helpdesk import RequestTracker, rt_missing, wait_until
from tests.support.relay import start_relay

CODE_LINE = r"^code: (\d{3,9}-\d{3}-\d{3})$"

pytestmark = pytest.mark.skipif(rt_missing() is not None, reason=str(rt_missing()))


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RequestTracker]:
    server = RequestTracker(tmp_path_factory.mktemp("rt"))
    try:
        yield server
    finally:
        server.stop()


def test_join_link_and_summary_become_comments_on_the_rt_ticket(
    rt: RequestTracker, tmp_path: Path
) -> None:
    ticket = rt.create_ticket("The printer is broken")
    # User from a flag, password from the environment (as a container would have it).
    relay = start_relay(
        tmp_path / "relay",
        "--rt-url",
        rt.url,
        "--rt-user",
        rt.user,
        env={"PUENTE_RT_PASSWORD": rt.password},
    )
    try:
        token = relay.add_technician("Ana Technician")
        tech = technician(
            relay.ws_url,
            token,
            "diagnostics",
            "--ticket",
            f"RT-{ticket}",
            "--out",
            str(tmp_path / "diag.json"),
        )
        code = tech.expect(CODE_LINE).group(1)
        # The join link names the session by its unguessable id, never by the nameplate.
        join_url = tech.expect(r"^Join page for the customer .*: (\S+)$").group(1)
        assert re.fullmatch(re.escape(f"{relay.http_url}/join/") + "[0-9a-f]{32}", join_url)
        # Polled gently: the standalone RT server answers one request at a time.
        wait_until(lambda: len(rt.comments(ticket)) >= 1, 30, "the join-link comment", 0.5)
        [created] = rt.comments(ticket)
        assert "Remote support session created" in created["subject"]
        assert f"Join page for the customer: {join_url}" in created["text"]
        assert "Ana Technician created a Puente remote-support session" in created["text"]
        assert code not in created["text"]  # the secret half never reaches the relay or RT

        customer = ScriptedCustomer(
            relay.ws_url,
            code,
            tmp_path / "logs",
            answers={"Diagnostics": "y"},
            rating=5,
            comment="Solved in five minutes",
        )
        assert tech.wait(60) == 0, tech.output + tech.stderr
        assert customer.wait(30) == 0
        wait_until(lambda: len(rt.comments(ticket)) >= 2, 30, "the summary comment", 0.5)
        first, summary = rt.comments(ticket)
        assert first == created
        assert "Remote support session summary" in summary["subject"]
        text = summary["text"]
        assert "Technician: Ana Technician" in text
        assert 'Customer rating: 5/5 - "Solved in five minutes"' in text
        assert "diagnostics granted" in text
        assert "Diagnostics digest:" in text and "  - not collected" not in text
        assert "Ended by: technician" in text
    finally:
        logs = relay.stop()
    assert "Request Tracker http://127.0.0.1" in logs
    assert rt.password not in logs


def test_token_auth_a_retry_never_comments_twice_and_refusals_are_reported(
    rt: RequestTracker,
) -> None:
    ticket = rt.create_ticket("Retry test")
    connector = RequestTrackerConnector(rt.url, user=rt.user, password=rt.password, timeout=10)
    document = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": EventType.SESSION_CREATED,
        "session": {
            "ticket_id": str(ticket),
            "technician": "Ana",
            "join_url": "https://relay.example.com/join/417",
            "expires_at": "2026-01-02T03:14:05Z",
            "session_id": "s1",
        },
    }
    assert connector.deliver(document, 1).startswith(f"comment on RT ticket {ticket}")
    by_token = RequestTrackerConnector(rt.url, token=rt.token)
    other = {**document, "id": f"evt_{uuid.uuid4().hex}"}
    assert by_token.deliver(other, 1).startswith(f"comment on RT ticket {ticket}")
    # The acknowledgement was lost: the retry finds the comment and does not repeat it.
    assert connector.deliver(document, 2) == "already on the ticket"
    assert len(rt.comments(ticket)) == 2
    wrong = RequestTrackerConnector(rt.url, user=rt.user, password="not-the-password")
    with pytest.raises(DeliveryError, match="HTTP 401"):
        wrong.deliver(document, 1)
    missing = {**document, "session": {**document["session"], "ticket_id": "999999"}}
    with pytest.raises(DeliveryError, match="HTTP 400 for ticket 999999"):
        connector.deliver(missing, 1)
