"""The session summary, written by the technician's client (it alone sees the content).

:class:`SessionJournal` notes what happened while a session runs: consents with their
times, the diagnostics digest, triage findings, fixes run and files moved. When the
session ends, :func:`build_summary` turns it into the relay's summary format
(:data:`protocol.summary.SUMMARY_SCHEMA`) and the client uploads it.

What the agent reported is hostile: every string is cut to one printable line of
bounded length before it leaves, and lists are cut to the schema's limits, so a
malicious agent can neither smuggle terminal escapes into a technician's screen or a
ticket nor make the upload fail. Only digests go in: never the diagnostics
themselves, screen content, keystrokes or file contents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.capabilities.diagnostics.collection import summarize
from protocol.messages import ConsentState

if TYPE_CHECKING:
    from .client import TechnicianSession

#: The summary format version this client writes.
SUMMARY_VERSION = 1

_CONSENT_STATES = {str(state) for state in ConsentState}


def one_line(text: object, limit: int) -> str:
    """``text`` as one printable line of at most ``limit`` characters.

    Control characters (terminal escapes included) become spaces; runs of spaces
    collapse. Safe to print in a terminal or put in a ticket.
    """
    cleaned = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return " ".join(cleaned.split())[:limit]


def iso(seconds: float) -> str:
    """Wall-clock seconds as ISO 8601 UTC to the second."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class SessionJournal:
    """What happened in a session, as the technician's client saw it."""

    diagnostics: dict[str, Any] | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    fixes: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)

    def diagnostics_collected(self, at: float, result: dict[str, Any]) -> None:
        """Keep the digest of diagnostics the agent returned (the latest collection wins)."""
        facts = [one_line(fact, 300) for fact in summarize(result)]
        self.diagnostics = {"collected_at": iso(at), "facts": [f for f in facts if f][:50]}

    def triaged(self, findings: list[tuple[str, str]]) -> None:
        """Keep the latest triage's findings, ``(title, detail)`` each (it replaces older ones:
        the latest triage says what is still wrong)."""
        self.findings = []
        for title, detail in findings[:50]:
            entry = {"title": one_line(title, 200) or "finding"}
            if detail:
                entry["detail"] = one_line(detail, 1000)
            self.findings.append(entry)

    def fix_run(
        self, at: float, fix_id: str, title: str, status: str, exit_code: int | None
    ) -> None:
        """Note a fix run: ``status`` is succeeded, failed, declined, stopped or refused."""
        self.fixes.append(
            {
                "fix_id": one_line(fix_id, 100) or "unknown",
                "title": one_line(title, 200),
                "status": status,
                "exit_code": exit_code,
                "at": iso(at),
            }
        )

    def file_moved(
        self, at: float, direction: str, name: str, size: int, sha256: str | None
    ) -> None:
        """Note a file transfer (its name and size only): to_customer or from_customer."""
        self.files.append(
            {
                "direction": direction,
                "name": one_line(name, 255) or "unnamed",
                "size": max(0, int(size)),
                "sha256": sha256,
                "at": iso(at),
            }
        )


def build_summary(session: TechnicianSession, technician: str, now: float) -> dict[str, Any]:
    """The summary of ``session`` in the relay's format, ready to upload."""
    started = session.started_at
    ended = session.ended_at if session.ended_at is not None else now
    consents = [
        {
            "capability": one_line(event.capability, 64),
            "state": event.state,
            "at": iso(event.at),
            "message": one_line(event.message, 500),
        }
        for event in session.consent_log
        if event.state in _CONSENT_STATES and one_line(event.capability, 64)
    ]
    rating = None
    if session.rating is not None:
        score, comment = session.rating
        rating = {"score": score, "comment": one_line(comment, 500)}
    journal = session.journal
    return {
        "version": SUMMARY_VERSION,
        "technician": one_line(technician, 100) or "Technician",
        "agent_software": one_line(session.agent_hello.software, 100),
        "started_at": iso(started),
        "ended_at": iso(ended),
        "duration_seconds": round(max(0.0, ended - started), 3),
        "ended_by": session.ended_by or "connection",
        "end_reason": one_line(session.end_reason or "", 500),
        "consents": consents[:200],
        "diagnostics": journal.diagnostics,
        "findings": journal.findings[:50],
        "fixes": journal.fixes[:50],
        "files": journal.files[:100],
        "rating": rating,
    }
