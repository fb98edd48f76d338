"""The relay's tamper-evident audit log: a hash chain of session metadata events.

Pure functions; :mod:`relay.store` keeps the entries in an append-only table.

Rules of the chain (everything that affects verification lives here):

* Entries are numbered 1, 2, 3... with no gaps; entry 1 follows :data:`GENESIS`.
* ``hash = SHA-256(prev_hash || canonical JSON [seq, at, event_id, type, session_id, data])``
  where ``data`` is the entry's JSON text exactly as stored, ``at`` an ISO 8601 UTC time
  with microseconds, and canonical JSON is ``json.dumps(..., separators=(",", ":"))``
  with ASCII escapes. Any edit of any field changes the hash; removing or inserting
  an entry breaks the numbering or the next entry's ``prev_hash``.
* Entries hold metadata only (ticket, technician, times, states, byte counts,
  digests of summaries, delivery acknowledgements): never screen content,
  keystrokes, file contents or the summary itself.

Truncating the newest entries cannot be seen from the chain alone: every event sent
to a help desk carries its entry's ``seq`` and ``hash``, so the help desk holds
anchors the relay cannot take back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: ``prev_hash`` of the first entry.
GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    """One stored entry of the chain."""

    seq: int
    at: str
    event_id: str
    type: str
    session_id: str
    data: str  # JSON text, hashed as stored
    prev_hash: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        """The entry as one JSON object (for export), with ``data`` parsed."""
        return {
            "seq": self.seq,
            "at": self.at,
            "event_id": self.event_id,
            "type": self.type,
            "session_id": self.session_id,
            "data": json.loads(self.data),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` found: ``ok``, how many entries, the head hash or the first bad one."""

    ok: bool
    entries: int
    head: str
    bad_seq: int | None = None
    problem: str = ""


def audit_time(seconds: float) -> str:
    """Wall-clock seconds as the ISO 8601 UTC text stored in ``at``."""
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


def canonical(value: Any) -> str:
    """The canonical JSON text of ``value`` (sorted keys, no spaces, ASCII)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def entry_hash(
    prev_hash: str, seq: int, at: str, event_id: str, type_: str, session_id: str, data: str
) -> str:
    """The hash of an entry given its fields and its predecessor's hash."""
    material = prev_hash + canonical([seq, at, event_id, type_, session_id, data])
    return hashlib.sha256(material.encode("ascii")).hexdigest()


def verify(entries: Iterable[AuditEntry]) -> Verdict:
    """Walk the chain in ``seq`` order; stop at the first entry that does not hold."""
    prev = GENESIS
    count = 0
    for entry in entries:
        expected_seq = count + 1
        if entry.seq != expected_seq:
            return Verdict(
                False,
                count,
                prev,
                entry.seq,
                f"entry {expected_seq} is missing (the next entry found is {entry.seq})",
            )
        if entry.prev_hash != prev:
            return Verdict(
                False,
                count,
                prev,
                entry.seq,
                f"entry {entry.seq} does not follow entry {entry.seq - 1} (its prev_hash differs)",
            )
        recomputed = entry_hash(
            entry.prev_hash,
            entry.seq,
            entry.at,
            entry.event_id,
            entry.type,
            entry.session_id,
            entry.data,
        )
        if recomputed != entry.hash:
            return Verdict(
                False,
                count,
                prev,
                entry.seq,
                f"entry {entry.seq} was altered (its contents no longer match its hash)",
            )
        try:
            json.loads(entry.data)
        except ValueError:
            return Verdict(False, count, prev, entry.seq, f"entry {entry.seq} holds broken JSON")
        prev = entry.hash
        count += 1
    return Verdict(True, count, prev)
