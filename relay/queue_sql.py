"""The help queue in SQL (SQLite and PostgreSQL): technicians' routing profiles, help
requests, organisations' signed category lists, and recent handling times.

:class:`QueueSql` is a mixin of :class:`relay.sqlite_store.SqlStore`: it runs its
statements through the store's ``_execute``. Every change to a request is a
compare-and-set on its ``version``, so relay nodes sharing the database never both
win the same request. The contract is in :class:`relay.store.RelayStore`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from .help_records import CHANGEABLE, HelpRequest, RequestState, TechnicianProfile
from .routing import Availability
from .tokens import hash_secret


def queue_schema(real: str = "REAL") -> str:
    """The tables, with ``real`` as the type of times (PostgreSQL: DOUBLE PRECISION)."""
    return f"""
CREATE TABLE IF NOT EXISTS technician_profiles (
    technician_id  TEXT PRIMARY KEY REFERENCES technicians(id),
    skills         TEXT NOT NULL,
    capacity       INTEGER NOT NULL,
    availability   TEXT NOT NULL,
    idle_since     {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS help_requests (
    id                  TEXT PRIMARY KEY,
    token_hash          TEXT NOT NULL,
    organisation_key    TEXT NOT NULL,
    description         TEXT NOT NULL,
    category            TEXT NOT NULL,
    language            TEXT NOT NULL,
    diagnostics_digest  TEXT,
    client_ip           TEXT NOT NULL,
    state               TEXT NOT NULL,
    version             INTEGER NOT NULL,
    created_at          {real} NOT NULL,
    offered_to          TEXT,
    offered_at          {real},
    declined_by         TEXT NOT NULL DEFAULT '[]',
    direct_to           TEXT,
    queue               TEXT,
    note                TEXT,
    tier                TEXT,
    accepted_by         TEXT,
    accepted_at         {real},
    finished_at         {real},
    session_id          TEXT
);
CREATE INDEX IF NOT EXISTS help_requests_by_state ON help_requests (state, created_at);
CREATE INDEX IF NOT EXISTS help_requests_by_technician ON help_requests (accepted_by, accepted_at);
CREATE TABLE IF NOT EXISTS categories (
    organisation_key  TEXT PRIMARY KEY,
    document          TEXT NOT NULL,
    published_at      {real} NOT NULL
);
"""


_REQUEST_COLUMNS = (
    "id, organisation_key, description, category, language, diagnostics_digest, client_ip,"
    " state, version, created_at, offered_to, offered_at, declined_by, direct_to, queue, note,"
    " tier, accepted_by, accepted_at, finished_at, session_id"
)

# A technician holds a request while it is offered to them, and while the session
# made when they accepted it is waiting or paired.
_HOLDING = """
    (SELECT COUNT(*) FROM help_requests r WHERE r.state = 'offered' AND r.offered_to = t.id)
  + (SELECT COUNT(*) FROM help_requests r JOIN sessions s ON s.id = r.session_id
     WHERE r.state = 'accepted' AND r.accepted_by = t.id AND s.state IN ('waiting', 'paired'))
"""


class QueueSql:
    """Help-queue methods of :class:`relay.store.RelayStore` in SQL."""

    def _execute(self, sql: str, params: Sequence[object] = ()) -> Any:  # supplied by the store
        raise NotImplementedError

    # profiles

    def set_profile(
        self,
        name: str,
        now: float,
        skills: Sequence[str] | None = None,
        capacity: int | None = None,
        availability: Availability | None = None,
    ) -> TechnicianProfile | None:
        row = self._execute(
            "SELECT id FROM technicians WHERE name = ? AND disabled = ?", (name.strip(), False)
        ).fetchone()
        if row is None:
            return None
        technician_id = str(row[0])
        current = self._profile_row(technician_id)
        if current is None:
            self._execute(
                "INSERT INTO technician_profiles"
                " (technician_id, skills, capacity, availability, idle_since)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    technician_id,
                    ",".join(skills or ()),
                    capacity if capacity is not None else 1,
                    str(availability or Availability.AWAY),
                    now,
                ),
            )
        else:
            idle_since = current[4]
            if availability is Availability.AVAILABLE and current[3] != Availability.AVAILABLE:
                idle_since = now  # idle counts from when they came back
            self._execute(
                "UPDATE technician_profiles SET skills = ?, capacity = ?, availability = ?,"
                " idle_since = ? WHERE technician_id = ?",
                (
                    ",".join(skills) if skills is not None else current[1],
                    capacity if capacity is not None else current[2],
                    str(availability) if availability is not None else current[3],
                    idle_since,
                    technician_id,
                ),
            )
        return self.get_profile(technician_id)

    def _profile_row(self, technician_id: str) -> Any:
        return self._execute(
            "SELECT technician_id, skills, capacity, availability, idle_since"
            " FROM technician_profiles WHERE technician_id = ?",
            (technician_id,),
        ).fetchone()

    def get_profile(self, technician_id: str) -> TechnicianProfile | None:
        rows = self._profiles("AND t.id = ?", (technician_id,))
        return rows[0] if rows else None

    def list_profiles(self) -> list[TechnicianProfile]:
        return self._profiles("", ())

    def _profiles(self, where: str, params: Sequence[object]) -> list[TechnicianProfile]:
        rows = self._execute(
            f"SELECT t.id, t.name, p.skills, p.capacity, p.availability, p.idle_since, {_HOLDING}"
            " FROM technician_profiles p JOIN technicians t ON t.id = p.technician_id"
            f" WHERE t.disabled = ? {where} ORDER BY t.name",
            (False, *params),
        ).fetchall()
        return [
            TechnicianProfile(
                technician_id=r[0],
                name=r[1],
                skills=tuple(s for s in str(r[2]).split(",") if s),
                capacity=int(r[3]),
                availability=Availability(r[4]),
                idle_since=float(r[5]),
                holding=int(r[6]),
            )
            for r in rows
        ]

    def touch_idle(self, technician_id: str, now: float) -> None:
        self._execute(
            "UPDATE technician_profiles SET idle_since = ? WHERE technician_id = ?",
            (now, technician_id),
        )

    # requests

    def add_help_request(
        self,
        token: str,
        organisation_key: str,
        description: str,
        category: str,
        language: str,
        diagnostics_digest: str | None,
        client_ip: str,
        now: float,
    ) -> HelpRequest:
        request_id = uuid.uuid4().hex
        self._execute(
            "INSERT INTO help_requests (id, token_hash, organisation_key, description, category,"
            " language, diagnostics_digest, client_ip, state, version, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'waiting', 1, ?)",
            (
                request_id,
                hash_secret(token),
                organisation_key,
                description,
                category,
                language,
                diagnostics_digest,
                client_ip,
                now,
            ),
        )
        found = self.get_help_request(request_id)
        assert found is not None  # just inserted
        return found

    def get_help_request(self, request_id: str) -> HelpRequest | None:
        row = self._execute(
            f"SELECT {_REQUEST_COLUMNS} FROM help_requests WHERE id = ?", (request_id,)
        ).fetchone()
        return _request(row) if row else None

    def help_request_token_hash(self, request_id: str) -> str | None:
        row = self._execute(
            "SELECT token_hash FROM help_requests WHERE id = ?", (request_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def open_help_requests(self) -> list[HelpRequest]:
        rows = self._execute(
            f"SELECT {_REQUEST_COLUMNS} FROM help_requests"
            " WHERE state IN ('waiting', 'offered') ORDER BY created_at, id"
        ).fetchall()
        return [_request(r) for r in rows]

    def change_help_request(
        self, request_id: str, version: int, changes: dict[str, object]
    ) -> HelpRequest | None:
        unknown = set(changes) - CHANGEABLE
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)}")
        values = [
            json.dumps(list(v))
            if k == "declined_by" and isinstance(v, tuple | list)
            else (str(v) if k == "state" else v)
            for k, v in changes.items()
        ]
        assignments = ", ".join(f"{name} = ?" for name in changes)
        cursor = self._execute(
            f"UPDATE help_requests SET {assignments}, version = version + 1"
            " WHERE id = ? AND version = ?",
            (*values, request_id, version),
        )
        if cursor.rowcount != 1:
            return None
        return self.get_help_request(request_id)

    def recent_handling_times(self, per_technician: int = 20) -> dict[str, list[float]]:
        rows = self._execute(
            "SELECT r.accepted_by, s.ended_at - s.paired_at FROM help_requests r"
            " JOIN sessions s ON s.id = r.session_id"
            " WHERE s.paired_at IS NOT NULL AND s.ended_at IS NOT NULL"
            " ORDER BY s.ended_at DESC LIMIT ?",
            (per_technician * 50,),
        ).fetchall()
        times: dict[str, list[float]] = {}
        for technician_id, seconds in rows:
            kept = times.setdefault(str(technician_id), [])
            if len(kept) < per_technician:
                kept.append(float(seconds))
        return times

    # categories

    def set_categories(self, organisation_key: str, document: str, now: float) -> None:
        self._execute(
            "INSERT INTO categories (organisation_key, document, published_at) VALUES (?, ?, ?)"
            " ON CONFLICT (organisation_key) DO UPDATE SET document = excluded.document,"
            " published_at = excluded.published_at",
            (organisation_key, document, now),
        )

    def get_categories(self, organisation_key: str) -> str | None:
        row = self._execute(
            "SELECT document FROM categories WHERE organisation_key = ?", (organisation_key,)
        ).fetchone()
        return str(row[0]) if row else None


def _request(row: Any) -> HelpRequest:
    return HelpRequest(
        id=row[0],
        organisation_key=row[1],
        description=row[2],
        category=row[3],
        language=row[4],
        diagnostics_digest=row[5],
        client_ip=row[6],
        state=RequestState(row[7]),
        version=int(row[8]),
        created_at=float(row[9]),
        offered_to=row[10],
        offered_at=row[11],
        declined_by=tuple(json.loads(row[12] or "[]")),
        direct_to=row[13],
        queue=row[14],
        note=row[15],
        tier=row[16],
        accepted_by=row[17],
        accepted_at=row[18],
        finished_at=row[19],
        session_id=row[20],
    )
