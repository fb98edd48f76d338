"""Help-desk events: what the relay tells ticketing systems, signed and retried. Pure.

Every session produces at most one event of each type, recorded in the audit log
(:mod:`relay.audit`) and queued in the outbox for each connector that wants it:

=====================  ==================================  ============================
type                   when                                carries
=====================  ==================================  ============================
``session.created``    ``POST /api/sessions``              session metadata, join link
``session.paired``     both ends met                       session metadata
``session.ended``      ended, expired or failed            session metadata
``session.summary``    the technician's client uploaded    metadata + the summary
                       the summary
``request.created``    a customer filed a help request     the request: description,
                                                           category, diagnostics digest
``request.accepted``   a technician accepted it            the request, the technician
``request.transferred`` moved on with a note               the request, target, note
``request.withdrawn``  the customer left while queued      the request, the reason
``request.solved``     self-help fixed it while queued     the request, the outcome (the
                                                           fix, its version, the problem)
=====================  ==================================  ============================

An event document (the webhook's JSON body) is::

    {"id": "evt_…", "type": "session.created", "occurred_at": "…Z",
     "session": {...}, "summary": {...} (session.summary only),
     "audit": {"seq": 12, "hash": "…"}}

``id`` is the idempotency key: a receiver processes each id once, since delivery is
at least once (a relay killed after the help desk answered but before it noted the
answer sends the event again). Webhook requests are signed:
``X-Puente-Signature: sha256=HEX(HMAC-SHA256(secret, TIMESTAMP + "." + BODY))`` with
``X-Puente-Timestamp: TIMESTAMP`` (Unix seconds); receivers reject stale timestamps.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from protocol.summary import summary_lines

if TYPE_CHECKING:
    from .help_records import HelpRequest
    from .records import SessionRecord

#: HTTP headers of a webhook delivery.
SIGNATURE_HEADER = "X-Puente-Signature"
TIMESTAMP_HEADER = "X-Puente-Timestamp"
EVENT_HEADER = "X-Puente-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"

#: How old a signed timestamp a receiver should accept, in seconds.
SIGNATURE_TOLERANCE = 300.0


class EventType(enum.StrEnum):
    SESSION_CREATED = "session.created"
    SESSION_PAIRED = "session.paired"
    SESSION_ENDED = "session.ended"
    SESSION_SUMMARY = "session.summary"
    #: Help requests (relay.helpqueue); ``session_id`` holds the request id.
    REQUEST_CREATED = "request.created"
    REQUEST_ACCEPTED = "request.accepted"
    REQUEST_TRANSFERRED = "request.transferred"
    REQUEST_WITHDRAWN = "request.withdrawn"
    #: Self-help solved it (relay.self_help): the ticket gets the outcome and is resolved.
    REQUEST_SOLVED = "request.solved"
    #: Audit only: a help desk acknowledged an event (never sent anywhere).
    DELIVERY_ACKNOWLEDGED = "delivery.acknowledged"
    #: Audit only: an enrolled device's failure action and its outcome (relay.devices);
    #: its session_id is ``device-`` and the device id.
    DEVICE_FAILURE_ACTION = "device.failure_action"
    #: Audit only: an enrolled device's answer to an update of its policy or fixes
    #: (relay.device_updates): applied, unchanged or refused.
    DEVICE_UPDATE = "device.update"


#: Event types recorded at most once per session (a unique index enforces it).
ONCE_PER_SESSION = (
    EventType.SESSION_CREATED,
    EventType.SESSION_PAIRED,
    EventType.SESSION_ENDED,
    EventType.SESSION_SUMMARY,
)


@dataclass(frozen=True)
class NewEvent:
    """An event about to be recorded.

    ``data`` is metadata: hashed into the audit log and sent. ``extra`` is sent to
    help desks but kept out of the audit log (the summary itself).
    """

    type: EventType
    session_id: str
    data: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def iso(seconds: float | None) -> str | None:
    """Wall-clock seconds as ISO 8601 UTC to the second (as the REST API shows), or None."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def session_view(record: SessionRecord, base_url: str) -> dict[str, Any]:
    """The session's metadata as events carry it (no secrets: the relay has none)."""
    duration = None
    if record.paired_at is not None and record.ended_at is not None:
        duration = round(max(0.0, record.ended_at - record.paired_at), 3)
    return {
        "session_id": record.id,
        "nameplate": record.nameplate,
        "ticket_id": record.ticket_id,
        "ticket_url": record.ticket_url,
        "technician": record.technician_name,
        "state": str(record.state),
        "created_at": iso(record.created_at),
        "expires_at": iso(record.expires_at),
        "paired_at": iso(record.paired_at),
        "ended_at": iso(record.ended_at),
        "end_reason": record.end_reason,
        "duration_seconds": duration,
        "bytes_agent_to_tech": record.bytes_agent_to_tech,
        "bytes_tech_to_agent": record.bytes_tech_to_agent,
        "join_url": join_url(base_url, record.id),
    }


def request_view(request: HelpRequest) -> dict[str, Any]:
    """A help request as events carry it (what the customer typed and chose)."""
    return {
        "request_id": request.id,
        "organisation_key": request.organisation_key,
        "description": request.description,
        "category": request.category,
        "language": request.language,
        "diagnostics_digest": request.diagnostics_digest,
        "state": str(request.state),
        "created_at": iso(request.created_at),
        "note": request.note,
    }


def rt_request_tag(request_id: str) -> str:
    """The tag in the subject of the RT ticket opened for a help request."""
    return f"[puente request {request_id}]"


def rt_request_ticket(doc: dict[str, Any]) -> tuple[str, str]:
    """The subject and plain-text body of the RT ticket opened for ``request.created``."""
    request = doc.get("request") or {}
    description = str(request.get("description", ""))
    subject = f"{request.get('category')}: {description[:60]} {rt_request_tag(str(request.get('request_id')))}"
    lines = [
        "A customer asked for help from their Puente agent.",
        "",
        f"Description: {description}",
        f"Category: {request.get('category')}",
        f"Language: {request.get('language')}",
        f"Diagnostics digest: {request.get('diagnostics_digest') or 'none attached'}",
        f"Request id: {request.get('request_id')}",
    ]
    return subject, "\n".join(lines) + "\n"


def rt_request_comment(doc: dict[str, Any]) -> tuple[str, str]:
    """The subject and body of the RT comment for a later event of a help request."""
    request = doc.get("request") or {}
    tag = rt_event_tag(str(doc["id"]))
    if doc["type"] == EventType.REQUEST_WITHDRAWN:
        text = (
            "The customer closed the agent while waiting in the queue; the help request "
            f"was withdrawn ({doc.get('reason') or 'no reason given'})."
        )
        return f"Help request withdrawn {tag}", text + "\n"
    if doc["type"] == EventType.REQUEST_SOLVED:
        outcome = doc.get("outcome") or {}
        text = (
            "Solved by self-help, with no technician involved: while the request waited "
            f"in the queue, the customer ran the organisation's signed fix {outcome.get('fix')} "
            f"{outcome.get('version')} ({outcome.get('title')}) for the problem "
            f"{outcome.get('problem') or 'found by triage'}; it ended with exit status "
            f'{outcome.get("exit_status")}, and the customer answered "That fixed it". '
            "Puente resolved this ticket."
        )
        return f"Help request solved by self-help {tag}", text + "\n"
    if doc["type"] == EventType.REQUEST_TRANSFERRED:
        text = f"Transferred to {doc.get('to')} with the note: {request.get('note')}"
        return f"Help request transferred {tag}", text + "\n"
    return f"Help request accepted {tag}", f"{doc.get('technician')} accepted the request.\n"


def join_url(base_url: str, session_id: str) -> str:
    """The customer's join page of a session. Its address is the session's random id
    (122 bits), never the nameplate: the link cannot be guessed, and trying links
    reveals no live code."""
    return f"{base_url.rstrip('/')}/join/{session_id}"


def summary_digest(summary_json: str) -> dict[str, Any]:
    """What the audit log keeps of a summary: its SHA-256 and size, not its text."""
    raw = summary_json.encode()
    return {"summary_sha256": hashlib.sha256(raw).hexdigest(), "summary_bytes": len(raw)}


def document(
    event_id: str,
    type_: str,
    occurred_at: str,
    data: dict[str, Any],
    extra: dict[str, Any],
    audit_seq: int,
    audit_hash: str,
) -> dict[str, Any]:
    """The event document sent to help desks."""
    return {
        "id": event_id,
        "type": type_,
        "occurred_at": occurred_at,
        **data,
        **extra,
        "audit": {"seq": audit_seq, "hash": audit_hash},
    }


def encode_document(doc: dict[str, Any]) -> bytes:
    """The exact bytes of a webhook body (compact, sorted keys, UTF-8)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Puente-Signature`` value for a body sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    now: float,
    tolerance: float = SIGNATURE_TOLERANCE,
) -> bool:
    """True if ``signature`` is ours over ``timestamp.body`` and the timestamp is fresh.

    This is what a receiver runs (the docs show it); the relay uses it in tests.
    """
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


# ---------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------


def retry_delay(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Seconds before retry number ``attempt`` (1 = after the first failure).

    Exponential (``base * 2**(attempt-1)``), capped at ``cap``, with "equal jitter":
    a uniformly random point in the upper half, so relays that failed together do not
    retry together, yet the wait never collapses towards zero. ``rand()`` is in [0, 1).
    """
    exponent = min(max(attempt - 1, 0), 62)  # 2**62 seconds is already past any cap
    ceiling = min(cap, base * 2.0**exponent)
    return ceiling / 2 + rand() * ceiling / 2


# ---------------------------------------------------------------------------
# Request Tracker
# ---------------------------------------------------------------------------

_RT_TICKET = re.compile(r"(?:rt)?[ #-]?(\d{1,12})", re.IGNORECASE)


def rt_ticket_number(ticket_id: str) -> int | None:
    """RT's numeric ticket id from a ticket reference (``1042``, ``#1042``, ``RT-1042``)."""
    match = _RT_TICKET.fullmatch(ticket_id.strip())
    return int(match.group(1)) if match else None


def rt_event_tag(event_id: str) -> str:
    """The tag put in an RT comment's subject, to find it again before retrying."""
    return f"[puente {event_id}]"


def rt_comment(doc: dict[str, Any]) -> tuple[str, str]:
    """The subject and plain-text body of the RT comment for an event document."""
    session = doc.get("session") or {}
    tag = rt_event_tag(str(doc["id"]))
    if doc["type"] == EventType.SESSION_CREATED:
        subject = f"Remote support session created {tag}"
        lines = [
            f"{session.get('technician')} created a Puente remote-support session for this ticket.",
            "",
            f"Join page for the customer: {session.get('join_url')}",
            "The technician reads the full session code to the customer; the relay never knows it.",
            f"The code expires at {session.get('expires_at')}.",
            f"Session id: {session.get('session_id')}",
        ]
        return subject, "\n".join(lines) + "\n"
    subject = f"Remote support session summary {tag}"
    lines = ["Puente remote-support session summary", ""]
    lines += summary_lines(doc.get("summary") or {}, session)
    return subject, "\n".join(lines) + "\n"
