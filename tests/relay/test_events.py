"""Help-desk events without the network: signatures, backoff, RT texts, summaries, audit chain."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest

from protocol.summary import SummaryInvalid, check_summary, summary_lines
from relay import audit
from relay.audit import GENESIS, AuditEntry, entry_hash
from relay.events import (
    EventType,
    retry_delay,
    rt_comment,
    rt_ticket_number,
    sign,
    verify_signature,
)
from relay.joinpage import JoinView, render_join_page, visitor_os

SUMMARY = {
    "version": 1,
    "technician": "Ana Technician",
    "agent_software": "puente-agent 0.1.0",
    "started_at": "2026-01-02T03:04:05Z",
    "ended_at": "2026-01-02T03:09:17Z",
    "duration_seconds": 312.0,
    "ended_by": "technician",
    "end_reason": "the technician finished",
    "consents": [
        {"capability": "diagnostics", "state": "granted", "at": "2026-01-02T03:05:00Z"},
        {
            "capability": "diagnostics",
            "state": "revoked",
            "at": "2026-01-02T03:06:00Z",
            "message": "stopped by the customer",
        },
    ],
    "diagnostics": {"collected_at": "2026-01-02T03:05:30Z", "facts": ["Disk / is 97% full"]},
    "findings": [{"title": "Disk nearly full", "detail": "Free space below 3%"}],
    "fixes": [],
    "files": [],
    "rating": {"score": 4, "comment": "Quick and kind"},
}


# ---------------------------------------------------------------------------
# signatures and backoff
# ---------------------------------------------------------------------------


def test_signature_verifies_only_the_same_body_secret_and_fresh_time() -> None:
    body = b'{"id":"evt_1"}'
    signature = sign("a-long-shared-secret", "1800000000", body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify_signature("a-long-shared-secret", "1800000000", body, signature, 1800000100)
    assert not verify_signature("another-secret-xx", "1800000000", body, signature, 1800000100)
    assert not verify_signature(
        "a-long-shared-secret", "1800000000", body + b" ", signature, 1800000100
    )
    assert not verify_signature("a-long-shared-secret", "1800000001", body, signature, 1800000100)
    # A replay long after the fact is refused even with a valid signature.
    assert not verify_signature("a-long-shared-secret", "1800000000", body, signature, 1800000400)
    assert not verify_signature("a-long-shared-secret", "-5", body, signature, 1800000000)


def test_retry_delay_doubles_with_jitter_up_to_the_cap() -> None:
    low = [retry_delay(n, 2.0, 60.0, lambda: 0.0) for n in range(1, 9)]
    high = [retry_delay(n, 2.0, 60.0, lambda: 0.999999) for n in range(1, 9)]
    assert low == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert [round(h) for h in high] == [2, 4, 8, 16, 32, 60, 60, 60]
    rng = random.Random(7)
    for attempt in range(1, 200):
        delay = retry_delay(attempt, 2.0, 900.0, rng.random)
        ceiling = min(900.0, 2.0 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert retry_delay(10**9, 2.0, 900.0, lambda: 0.5) <= 900.0  # no overflow


# ---------------------------------------------------------------------------
# Request Tracker texts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ticket", "number"),
    [("1042", 1042), ("#1042", 1042), ("RT-1042", 1042), ("rt1042", 1042), (" 7 ", 7)],
)
def test_rt_ticket_numbers(ticket: str, number: int) -> None:
    assert rt_ticket_number(ticket) == number


@pytest.mark.parametrize("ticket", ["HD-1042", "1042a", "", "RT-", "12 34", "1" * 13])
def test_non_rt_tickets_are_not_rt_numbers(ticket: str) -> None:
    assert rt_ticket_number(ticket) is None


def test_rt_comments_carry_the_join_link_or_the_summary_and_the_event_tag() -> None:
    session = {
        "session_id": "s1",
        "ticket_id": "1042",
        "technician": "Ana Technician",
        "join_url": "https://relay.example.com/join/417",
        "expires_at": "2026-01-02T03:14:05Z",
    }
    subject, text = rt_comment(
        {"id": "evt_abc", "type": EventType.SESSION_CREATED, "session": session}
    )
    assert "[puente evt_abc]" in subject
    assert "Join page for the customer: https://relay.example.com/join/417" in text
    subject, text = rt_comment(
        {"id": "evt_def", "type": EventType.SESSION_SUMMARY, "session": session, "summary": SUMMARY}
    )
    assert "[puente evt_def]" in subject
    assert 'Customer rating: 4/5 - "Quick and kind"' in text
    assert "2026-01-02T03:05:00Z diagnostics granted" in text
    assert "Disk / is 97% full" in text
    assert "Disk nearly full: Free space below 3%" in text
    assert "Duration: 5 min 12 s" in text
    empty = summary_lines({**SUMMARY, "rating": None, "consents": [], "diagnostics": None}, session)
    assert "Customer rating: not given" in empty and "  - not collected" in empty


# ---------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------


def test_a_complete_summary_is_valid() -> None:
    assert check_summary(json.loads(json.dumps(SUMMARY))) == SUMMARY


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"screenshot": "iVBORw0KGgo="}, "has a field the summary format does not have"),
        ({"rating": {"score": 6}}, "rating/score"),
        (
            {"rating": {"score": 3, "comment": "ok\x1b[2J"}},
            "rating/comment must be one printable line",
        ),
        ({"technician": ""}, "technician"),
        ({"started_at": "yesterday"}, "started_at is not in the expected format"),
        (
            {"consents": [{"capability": "shell", "state": "maybe", "at": "2026-01-02T03:04:05Z"}]},
            "consents/0/state",
        ),
        (
            {
                "files": [
                    {
                        "direction": "to_customer",
                        "name": "a.txt",
                        "size": 3,
                        "at": "2026-01-02T03:04:05Z",
                        "content": "secret",
                    }
                ]
            },
            "files/0",
        ),
        ({"version": 2}, "version"),
    ],
)
def test_invalid_summaries_are_refused_with_where_and_why(change: dict, complaint: str) -> None:
    with pytest.raises(SummaryInvalid) as refused:
        check_summary({**SUMMARY, **change})
    assert complaint in str(refused.value)
    assert str(refused.value).startswith("The summary is invalid: ")


def test_summary_needs_its_core_fields() -> None:
    broken = dict(SUMMARY)
    del broken["rating"]
    with pytest.raises(SummaryInvalid, match="rating"):
        check_summary(broken)
    with pytest.raises(SummaryInvalid):
        check_summary(["not", "an", "object"])


# ---------------------------------------------------------------------------
# the audit chain
# ---------------------------------------------------------------------------


def chain(count: int) -> list[AuditEntry]:
    entries = []
    prev = GENESIS
    for seq in range(1, count + 1):
        data = json.dumps({"session": {"ticket_id": f"T-{seq}"}})
        at = f"2026-01-02T03:04:{seq:02d}.000000Z"
        digest = entry_hash(prev, seq, at, f"evt_{seq}", "session.created", f"s{seq}", data)
        entries.append(
            AuditEntry(seq, at, f"evt_{seq}", "session.created", f"s{seq}", data, prev, digest)
        )
        prev = digest
    return entries


def test_an_intact_chain_verifies() -> None:
    entries = chain(5)
    verdict = audit.verify(entries)
    assert verdict.ok and verdict.entries == 5 and verdict.head == entries[-1].hash
    assert audit.verify([]).ok


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "problem"),
    [
        (
            lambda e: [*e[:2], replace(e[2], data='{"session":{"ticket_id":"T-999"}}'), *e[3:]],
            3,
            "altered",
        ),
        (lambda e: [*e[:2], replace(e[2], at="2020-01-01T00:00:00.000000Z"), *e[3:]], 3, "altered"),
        (lambda e: [*e[:1], replace(e[1], type="session.ended"), *e[2:]], 2, "altered"),
        (lambda e: [*e[:2], *e[3:]], 4, "missing"),
        (lambda e: [e[0], e[2], e[1], *e[3:]], 3, "missing"),
        (lambda e: [*e[:3], replace(e[3], prev_hash=e[1].hash), e[4]], 4, "does not follow"),
    ],
)
def test_any_edit_names_the_first_bad_entry(tamper, bad_seq: int, problem: str) -> None:  # type: ignore[no-untyped-def]
    verdict = audit.verify(tamper(chain(5)))
    assert not verdict.ok
    assert verdict.bad_seq == bad_seq
    assert problem in verdict.problem


# ---------------------------------------------------------------------------
# the join page
# ---------------------------------------------------------------------------


def test_join_page_escapes_everything_it_shows() -> None:
    view = JoinView(
        technician='<img src=x onerror="alert(1)">',
        ticket_id="<script>alert('t')</script>",
        nameplate="417",
        expires_at="2026-01-02T03:14:05Z",
        relay_url="wss://relay.example.com",
        download_url='https://dl.example.com/"><script>x</script>',
        visitor_os="windows",
    )
    page = render_join_page(view)
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#x27;t&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert 'href="https://dl.example.com/&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in page
    blocked = page.index("Windows: if SmartScreen")
    assert blocked < page.index("macOS: if Gatekeeper") < page.index("Linux: a downloaded")
    assert "(this computer)" in page[blocked : page.index("macOS: if Gatekeeper")]
    assert '<span class="code">417-</span>' in page


@pytest.mark.parametrize(
    ("agent", "system"),
    [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "windows"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)", "macos"),
        ("Mozilla/5.0 (X11; Linux x86_64)", "linux"),
        ("Mozilla/5.0 (Linux; Android 14)", None),
        (None, None),
    ],
)
def test_visitor_os(agent: str | None, system: str | None) -> None:
    assert visitor_os(agent) == system
