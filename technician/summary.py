"""The session summary, written by the technician's client (it alone sees the content).

The session notes what happened while it runs: consents with their times, and in its
:class:`technician.journal.SessionJournal` the diagnostics digest, triage findings,
fixes run and files moved. When the session ends, :func:`build_summary` turns them
into the relay's summary format (:data:`protocol.summary.SUMMARY_SCHEMA`) and the
client uploads it.

What the agent reported is hostile: every string goes through safe_text: one inert line of
bounded length before it leaves, and lists are cut to the schema's limits, so a
malicious agent can neither smuggle terminal escapes into a technician's screen or a
ticket nor make the upload fail. Only digests go in: never the diagnostics
themselves, screen content, keystrokes or file contents.
"""

from __future__ import annotations

from typing import Any

from protocol.messages import ConsentState
from protocol.safe_text import safe_text

from .client import TechnicianSession
from .journal import iso

#: The summary format version this client writes.
SUMMARY_VERSION = 1

_CONSENT_STATES = {str(state) for state in ConsentState}


def build_summary(session: TechnicianSession, technician: str, now: float) -> dict[str, Any]:
    """The summary of ``session`` in the relay's format, ready to upload."""
    started = session.started_at
    ended = session.ended_at if session.ended_at is not None else now
    consents = [
        {
            "capability": safe_text(event.capability, 64),
            "state": event.state,
            "at": iso(event.at),
            "message": safe_text(event.message, 500),
        }
        for event in session.consent_log
        if event.state in _CONSENT_STATES and safe_text(event.capability, 64)
    ]
    rating = None
    if session.rating is not None:
        score, comment = session.rating
        rating = {"score": score, "comment": safe_text(comment, 500)}
    journal = session.journal
    return {
        "version": SUMMARY_VERSION,
        "technician": safe_text(technician, 100) or "Technician",
        "agent_software": safe_text(session.agent_hello.software, 100),
        "started_at": iso(started),
        "ended_at": iso(ended),
        "duration_seconds": round(max(0.0, ended - started), 3),
        "ended_by": session.ended_by or "connection",
        "end_reason": safe_text(session.end_reason or "", 500),
        "consents": consents[:200],
        "diagnostics": journal.diagnostics,
        "findings": journal.findings[:50],
        "fixes": journal.fixes[:50],
        "files": journal.files[:100],
        "rating": rating,
    }
