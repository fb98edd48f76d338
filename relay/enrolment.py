"""Enrolment tokens and the devices they enrolled, in the relay's database (SQLite, or
the PostgreSQL database relay nodes share: :mod:`relay.device_sql`).

An operator makes a token (``puente-relay enrolment create``): ``pe_<id>_<secret>``,
valid for some days and some uses, optionally carrying the organisation's signed
device policy. Only the SHA-256 of the secret is kept (:func:`relay.tokens.hash_secret`),
as for API tokens. :meth:`EnrolmentBook.redeem` spends one use and registers the
device's public key, in one transaction, or refuses with a sentence that says what to
do: an unknown, expired, used-up or withdrawn token changes nothing. The use is spent
by a compare-and-set on the token's row (:mod:`relay.device_sql`, rule ``tokens``), so
relay nodes redeeming the same token at once never spend more uses than it has.

The relay cannot verify the policy (it holds no organisation key, by design): it
checks only that the file is a signed Puente device policy, and hands it to the
device, which verifies it against its pinned key (:func:`protocol.device_policy.verify_policy`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.device_policy import read_policy_unverified
from protocol.errors import TrustError
from protocol.identity import public_key_from_raw

from .device_sql import DeviceConnection, DeviceDatabase
from .errors import EnrolmentRefused
from .tokens import hash_secret

TOKEN_PREFIX = "pe"
MAX_USES = 100_000
MAX_VALID_DAYS = 365


@dataclass(frozen=True)
class EnrolmentToken:
    token_id: str
    created_at: float
    expires_at: float
    uses_allowed: int
    uses: int
    withdrawn: bool
    policy: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "token_id": self.token_id,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "uses_allowed": self.uses_allowed,
            "uses": self.uses,
            "withdrawn": self.withdrawn,
            "has_policy": self.policy is not None,
        }


@dataclass(frozen=True)
class EnrolledDevice:
    device_id: str
    public_key: bytes
    token_id: str
    enrolled_at: float
    #: The signed policy the device runs (None: the default policy).
    policy: str | None
    last_seen: float | None = None
    online: bool = False


def check_signed_policy(data: bytes) -> str:
    """The policy file's text if it reads as a signed device policy; else a sentence.

    Only its shape and content are checked here: the relay has no organisation key.
    """
    try:
        read_policy_unverified(data)
    except TrustError as exc:
        hint = ""
        if data.lstrip().startswith((b"[", b"#")) or b"[[checks]]" in data:
            hint = " It looks like a policy source: sign it first with 'puente-tech policy sign'."
        raise EnrolmentRefused(
            f"The policy file is not a signed device policy: {exc}{hint}"
        ) from None
    return data.decode("utf-8")


def device_id_for(public_key: bytes) -> str:
    """A device's id: the first 128 bits of its public key's SHA-256, in hex."""
    return hashlib.sha256(public_key).hexdigest()[:32]


class EnrolmentBook:
    """Enrolment tokens and enrolled devices in ``database`` (a SQLite file's path, or a
    :class:`relay.device_sql.DeviceDatabase`)."""

    def __init__(self, database: Path | DeviceDatabase) -> None:
        self._db: DeviceConnection = DeviceDatabase.of(database).connect()

    def close(self) -> None:
        self._db.close()

    def create_token(
        self, now: float, uses: int, valid_days: int, policy: str | None = None
    ) -> tuple[str, EnrolmentToken]:
        """A new token (shown once) and its record."""
        if not 1 <= uses <= MAX_USES:
            raise EnrolmentRefused(f"--uses must be a whole number from 1 to {MAX_USES}.")
        if not 1 <= valid_days <= MAX_VALID_DAYS:
            raise EnrolmentRefused(
                f"--valid-days must be a whole number from 1 to {MAX_VALID_DAYS}."
            )
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        record = EnrolmentToken(token_id, now, now + valid_days * 86400, uses, 0, False, policy)
        self._db.execute(
            "INSERT INTO enrolment_tokens (token_id, secret_hash, created_at, expires_at, "
            "uses_allowed, policy) VALUES (?, ?, ?, ?, ?, ?)",
            (token_id, hash_secret(secret), now, record.expires_at, uses, policy),
        )
        return f"{TOKEN_PREFIX}_{token_id}_{secret}", record

    def tokens(self) -> list[EnrolmentToken]:
        rows = self._db.execute(
            "SELECT token_id, created_at, expires_at, uses_allowed, uses, withdrawn, policy "
            "FROM enrolment_tokens ORDER BY created_at"
        ).fetchall()
        return [EnrolmentToken(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def withdraw(self, token_id: str) -> bool:
        done = self._db.execute(
            "UPDATE enrolment_tokens SET withdrawn = 1 WHERE token_id = ?", (token_id,)
        )
        return done.rowcount == 1

    def peek(self, token: str, now: float) -> str | None:
        """The policy ``token`` carries, if it could enrol a device now (spends nothing)."""
        token_id, secret = _split_token(token)
        return self._usable(token_id, secret, now)

    def redeem(self, token: str, public_key: bytes, now: float) -> EnrolledDevice:
        """Spend one use of ``token`` to enrol the device holding ``public_key``."""
        try:
            public_key_from_raw(public_key, "The device key")
        except TrustError as exc:
            raise EnrolmentRefused(str(exc)) from None
        token_id, secret = _split_token(token)
        try:
            with self._db.transaction():
                policy = self._usable(token_id, secret, now)
                return self._register(token_id, public_key, now, policy)
        except Exception as exc:
            if not self._db.is_duplicate(exc):
                raise
        # Another node registered the same key between our look and our insert.
        raise EnrolmentRefused(
            f"This device key is already enrolled (device {device_id_for(public_key)}); "
            "unenrol it first or keep using it."
        )

    def _usable(self, token_id: str, secret: str | None, now: float) -> str | None:
        """The token's policy if it may enrol now; else EnrolmentRefused saying why.
        ``secret`` None: the caller checked it already."""
        # The policy is the token's newest published one, if any (relay.device_updates).
        row = self._db.execute(
            "SELECT t.secret_hash, t.expires_at, t.uses_allowed, t.uses, t.withdrawn, "
            "COALESCE((SELECT p.document FROM device_publications p WHERE p.token_id = "
            "t.token_id AND p.kind = 'policy' ORDER BY p.id DESC LIMIT 1), t.policy) "
            "FROM enrolment_tokens t WHERE t.token_id = ?",
            (token_id,),
        ).fetchone()
        if row is None or (
            secret is not None and not hmac.compare_digest(row[0], hash_secret(secret))
        ):
            raise EnrolmentRefused(
                "This enrolment token is not known to the relay; check that it was copied "
                "whole, or ask your help desk for a new one."
            )
        _, expires_at, allowed, uses, withdrawn, policy = row
        if withdrawn:
            raise EnrolmentRefused(
                "This enrolment token was withdrawn; ask your help desk for a new one."
            )
        if now >= expires_at:
            raise EnrolmentRefused(
                "This enrolment token has expired; ask your help desk for a new one."
            )
        if uses >= allowed:
            raise EnrolmentRefused(
                f"This enrolment token was already used {allowed} time(s), all it allows; ask "
                "your help desk for a new one."
            )
        return str(policy) if policy is not None else None

    def _register(
        self, token_id: str, public_key: bytes, now: float, policy: str | None
    ) -> EnrolledDevice:
        device_id = device_id_for(public_key)
        known = self._db.execute(
            "SELECT device_id FROM enrolled_devices WHERE public_key = ?", (public_key,)
        ).fetchone()
        if known is not None:
            raise EnrolmentRefused(
                f"This device key is already enrolled (device {known[0]}); unenrol it first "
                "or keep using it."
            )
        # Compare-and-set: the condition is judged against the row as it is when the
        # update runs, so another node spending the last use first leaves us none.
        spent = self._db.execute(
            "UPDATE enrolment_tokens SET uses = uses + 1 WHERE token_id = ? AND uses < "
            "uses_allowed AND withdrawn = 0 AND expires_at > ?",
            (token_id, now),
        )
        if spent.rowcount != 1:
            self._usable(token_id, None, now)  # says why (used up, withdrawn, expired)
            raise EnrolmentRefused("This enrolment token cannot enrol a device now.")
        self._db.execute(
            "INSERT INTO enrolled_devices (device_id, public_key, token_id, enrolled_at, "
            "policy) VALUES (?, ?, ?, ?, ?)",
            (device_id, public_key, token_id, now, policy),
        )
        return EnrolledDevice(device_id, public_key, token_id, now, policy)

    def seen(self, device_id: str, now: float, online: bool) -> None:
        """Note that the device was heard from (or went away)."""
        self._db.execute(
            "UPDATE enrolled_devices SET last_seen = ?, online = ? WHERE device_id = ?",
            (now, int(online), device_id),
        )

    def forget(self, device_id: str) -> bool:
        """Remove an unenrolled device (its key stops working at once)."""
        done = self._db.execute("DELETE FROM enrolled_devices WHERE device_id = ?", (device_id,))
        return done.rowcount == 1

    def devices(self) -> list[EnrolledDevice]:
        rows = self._db.execute(_DEVICE_SELECT + " ORDER BY d.enrolled_at").fetchall()
        return [_device(row) for row in rows]

    def device(self, device_id: str) -> EnrolledDevice | None:
        row = self._db.execute(_DEVICE_SELECT + " WHERE d.device_id = ?", (device_id,)).fetchone()
        return None if row is None else _device(row)


# A device runs the policy it enrolled with or last took (relay.device_updates); one
# enrolled before updates existed, its token's.
_DEVICE_SELECT = (
    "SELECT d.device_id, d.public_key, d.token_id, d.enrolled_at, COALESCE(d.policy, "
    "t.policy), d.last_seen, d.online FROM enrolled_devices d JOIN enrolment_tokens t "
    "USING (token_id)"
)


def _device(row: tuple[Any, ...]) -> EnrolledDevice:
    return EnrolledDevice(row[0], bytes(row[1]), row[2], row[3], row[4], row[5], bool(row[6]))


def _split_token(token: str) -> tuple[str, str]:
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        raise EnrolmentRefused(
            "This is not an enrolment token (they look like pe_...); copy the whole token "
            "your help desk gave you."
        )
    return parts[1], parts[2]
