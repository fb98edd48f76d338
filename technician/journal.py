"""The session journal: what happened in a session, as the technician's client saw it.

:class:`SessionJournal` notes, while a session runs, the diagnostics digest, triage
findings, fixes run and files moved; :func:`technician.summary.build_summary` turns it
(with the session's consents and rating) into the summary the relay stores.

What the agent reported is hostile: every string goes through
:func:`protocol.safe_text.safe_text` (one inert line of bounded length), and lists to the schema's limits, so a malicious
agent can neither smuggle terminal escapes into a technician's screen or a ticket nor
make the upload fail. Only digests go in: never the diagnostics themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from protocol.diagnostics_facts import summarize
from protocol.safe_text import safe_text


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
        facts = [safe_text(fact, 300) for fact in summarize(result)]
        self.diagnostics = {"collected_at": iso(at), "facts": [f for f in facts if f][:50]}

    def triaged(self, findings: list[tuple[str, str]]) -> None:
        """Keep the latest triage's findings, ``(title, detail)`` each (it replaces older ones:
        the latest triage says what is still wrong)."""
        self.findings = []
        for title, detail in findings[:50]:
            entry = {"title": safe_text(title, 200) or "finding"}
            if detail:
                entry["detail"] = safe_text(detail, 1000)
            self.findings.append(entry)

    def fix_run(
        self, at: float, fix_id: str, title: str, status: str, exit_code: int | None
    ) -> None:
        """Note a fix run: ``status`` is succeeded, failed, declined, stopped or refused."""
        self.fixes.append(
            {
                "fix_id": safe_text(fix_id, 100) or "unknown",
                "title": safe_text(title, 200),
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
                "name": safe_text(name, 255) or "unnamed",
                "size": max(0, int(size)),
                "sha256": sha256,
                "at": iso(at),
            }
        )
