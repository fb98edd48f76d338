"""Updating enrolled devices' policy and fix bundles without enrolling them again.

An operator publishes a signed policy and/or signed fix bundles for the devices a
token enrolled (``puente-relay enrolment publish``): each is a row of
``device_publications``, numbered in order (:class:`UpdateBook`). The relay reads the
document only enough to file it (a policy's number, a bundle's fix id): it holds no
organisation key and cannot verify or change it, and the device verifies everything
against its pinned key (:mod:`agent.device_updates`).

Rules::

    owed       a device is owed the latest policy and the latest bundle of each fix
               published for its token with a number above the last it answered
               (``enrolled_devices.update_seen``), in number order, in as many
               ``update`` messages as their size needs (as small as other messages,
               64 KiB; a bigger bundle alone in one: protocol.device_wire).
    when       at each connection (after ``welcome``), and, while it is connected, at
               the first pass (every few seconds, on every node) after a publication
               for its token.
    answers    ``updated`` N: the device has answered everything up to N; the policy
               it now runs is recorded (``enrolled_devices.policy``) when its number is
               the one offered, so the relay's alert thresholds follow the device.
    refusals   a refused update raises the alert ``policy-update`` (one per device, a
               ticket through the alert book, the device's sentence as a note on it);
               a later update applied or unchanged resolves it.
    new        a token's newest published policy is what it shows and gives to the
               devices it enrols from then on (the owner reads and accepts that one).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol import device_wire as wire
from protocol.device_policy import POLICY_UPDATE_CHECK, read_policy_unverified
from protocol.errors import TrustError
from protocol.fixbundle import MAX_BUNDLE_SIZE, read_bundle
from protocol.safe_text import safe_text

from .alert_book import AlertBook
from .alerts import Action, Observation
from .device_sql import DeviceConnection, DeviceDatabase
from .enrolment import check_signed_policy
from .errors import EnrolmentRefused
from .events import EventType, NewEvent

logger = logging.getLogger("relay.device_updates")

#: Room left in an update message for its JSON around the documents.
_ENVELOPE = 1024
#: Seconds between two looks for new publications, on each node.
POLL_SECONDS = 5.0


@dataclass(frozen=True)
class Publication:
    """One published document: a signed policy, or a fix bundle (base64)."""

    id: int
    token_id: str
    kind: str  # "policy" or "fix"
    name: str  # "policy", or the fix's id
    document: str


@dataclass(frozen=True)
class Update:
    """One ``update`` message owed to a device."""

    id: int
    policy: str | None
    fixes: tuple[str, ...]

    def encode(self) -> str:
        return wire.encode("update", id=self.id, policy=self.policy, fixes=list(self.fixes))


def read_fix(data: bytes, where: str) -> tuple[str, str]:
    """A signed bundle's fix id and its base64; EnrolmentRefused (a sentence) if it is
    not a signed Puente fix bundle (the device checks the signature itself)."""
    if len(data) > MAX_BUNDLE_SIZE:
        raise EnrolmentRefused(f"{where} is larger than {MAX_BUNDLE_SIZE} bytes; it is refused.")
    try:
        bundle = read_bundle(data)
    except TrustError as exc:
        raise EnrolmentRefused(f"{where} is not a fix bundle: {exc}") from None
    if not bundle.signed:
        raise EnrolmentRefused(f"{where} is not signed; sign it first with 'puente-tech fix sign'.")
    return bundle.manifest.id, base64.b64encode(data).decode("ascii")


class UpdateBook:
    """Publications and what each device answered, in the devices' database."""

    def __init__(self, database: Path | DeviceDatabase) -> None:
        self._db: DeviceConnection = DeviceDatabase.of(database).connect()

    def close(self) -> None:
        self._db.close()

    # -- the operator's side --------------------------------------------------------------

    def publish(
        self,
        token_ids: Sequence[str],
        now: float,
        policy: bytes | None = None,
        fixes: Iterable[tuple[str, bytes]] = (),
    ) -> list[Publication]:
        """File ``policy`` (signed) and ``fixes`` ((where, bundle) pairs) for the devices
        of ``token_ids``; EnrolmentRefused (a sentence) and nothing filed on a bad one."""
        documents: list[tuple[str, str, str]] = []
        if policy is not None:
            documents.append(("policy", "policy", check_signed_policy(policy)))
        for where, data in fixes:
            name, text = read_fix(data, where)
            documents.append(("fix", name, text))
        if not documents:
            raise EnrolmentRefused("Say what to publish: --policy FILE, --fix FILE or both.")
        with self._db.transaction():
            known = {
                str(row[0]) for row in self._db.execute("SELECT token_id FROM enrolment_tokens")
            }
            unknown = [token for token in token_ids if token not in known]
            if unknown or not token_ids:
                raise EnrolmentRefused(
                    f"No enrolment token {unknown[0]!r}; see 'puente-relay enrolment list'."
                    if unknown
                    else "Name the tokens whose devices get the update, or --all."
                )
            for token_id in token_ids:
                for kind, name, document in documents:
                    self._db.execute(
                        "INSERT INTO device_publications (token_id, kind, name, document, "
                        "published_at) VALUES (?, ?, ?, ?, ?)",
                        (token_id, kind, name, document, now),
                    )
        return self.publications(token_ids)

    def publications(self, token_ids: Sequence[str] | None = None) -> list[Publication]:
        rows = self._db.execute(
            "SELECT id, token_id, kind, name, document FROM device_publications ORDER BY id"
        ).fetchall()
        found = [Publication(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]
        return [p for p in found if token_ids is None or p.token_id in token_ids]

    # -- the relay's side -----------------------------------------------------------------

    def newest(self) -> int:
        """The number of the newest publication (0: none yet)."""
        row = self._db.execute("SELECT MAX(id) FROM device_publications").fetchone()
        return int(row[0] or 0)

    def tokens(self) -> set[str]:
        """Tokens with any publication."""
        rows = self._db.execute("SELECT DISTINCT token_id FROM device_publications").fetchall()
        return {str(row[0]) for row in rows}

    def tokens_since(self, after: int) -> set[str]:
        """Tokens with a publication numbered above ``after``."""
        rows = self._db.execute(
            "SELECT DISTINCT token_id FROM device_publications WHERE id > ?", (after,)
        ).fetchall()
        return {str(row[0]) for row in rows}

    def owed(self, device_id: str) -> list[Update]:
        """What ``device_id`` is owed (rule ``owed``), in order; [] if nothing."""
        items = self._db.execute(
            "SELECT p.id, p.kind, p.document FROM enrolled_devices d JOIN "
            "device_publications p ON p.token_id = d.token_id AND p.id > d.update_seen "
            "WHERE d.device_id = ? AND p.id = (SELECT MAX(q.id) FROM device_publications q "
            "WHERE q.token_id = p.token_id AND q.kind = p.kind AND q.name = p.name) "
            "ORDER BY p.id",
            (device_id,),
        ).fetchall()
        updates: list[Update] = []
        policy: str | None = None
        fixes: list[str] = []
        size = last = 0
        for number, kind, document in items:
            # Small messages, as every other one the relay sends; a bundle too big for
            # one goes alone, up to MAX_UPDATE_MESSAGE.
            if (policy is not None or fixes) and size + len(document) > (
                wire.MAX_MESSAGE - _ENVELOPE
            ):
                updates.append(Update(last, policy, tuple(fixes)))
                policy, fixes, size = None, [], 0
            if kind == "policy":
                policy = str(document)
            else:
                fixes.append(str(document))
            size += len(document)
            last = int(number)
        if policy is not None or fixes:
            updates.append(Update(last, policy, tuple(fixes)))
        return updates

    def answered(self, device_id: str, number: int, runs: str | None) -> None:
        """The device answered everything up to ``number``; ``runs``: the policy it now
        runs, when it took the one offered."""
        self._db.execute(
            "UPDATE enrolled_devices SET update_seen = ? WHERE device_id = ? AND update_seen < ?",
            (number, device_id, number),
        )
        if runs is not None:
            self._db.execute(
                "UPDATE enrolled_devices SET policy = ? WHERE device_id = ?", (runs, device_id)
            )


def policy_number(document: str | None) -> int | None:
    """A signed policy's number, read without verifying (the relay cannot)."""
    if document is None:
        return None
    try:
        return read_policy_unverified(document.encode()).number
    except TrustError:
        return None


class UpdateDesk:
    """The relay's side of updates for the devices connected to this node (module rules
    ``when``, ``answers`` and ``refusals``). ``send(device_id, text)`` speaks to a device
    connected here; ``owed()`` says an alert action was recorded (for delivery)."""

    def __init__(
        self,
        database: DeviceDatabase,
        alerts: AlertBook,
        clock: Callable[[], float],
        send: Callable[[str, str], Awaitable[bool]],
        owed: Callable[[], None],
        audit: Callable[[NewEvent], object] | None = None,
    ) -> None:
        self.book = UpdateBook(database)
        self._alerts = alerts
        self._clock = clock
        self._send = send
        self._owed = owed
        self._audit = audit
        #: Devices connected here -> their token (set by the device desk).
        self.connected: dict[str, str] = {}
        #: Device -> update number -> the policy that update offered (or None).
        self._offered: dict[str, dict[int, str | None]] = {}
        self._newest = 0
        #: Tokens with a publication: a device of another token is owed nothing, and
        #: its connection costs no query (most devices, most of the time).
        self._published: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self, poll_seconds: float = POLL_SECONDS) -> None:
        self._newest = self.book.newest()
        self._published = self.book.tokens()
        self._task = asyncio.create_task(self._poll(poll_seconds), name="device-updates")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.book.close()

    def arrived(self, device_id: str, token_id: str) -> None:
        self.connected[device_id] = token_id

    def left(self, device_id: str) -> None:
        self.connected.pop(device_id, None)
        self._offered.pop(device_id, None)

    async def offer(self, device_id: str) -> None:
        """Send ``device_id`` what it is owed and was not offered on this connection."""
        if self.connected.get(device_id) not in self._published:
            return
        offered = self._offered.setdefault(device_id, {})
        for update in self.book.owed(device_id):
            if offered and max(offered) >= update.id:
                continue
            offered[update.id] = update.policy
            if not await self._send(device_id, update.encode()):
                offered.pop(update.id, None)
                return
            logger.info("update offered device=%s update=%d", device_id, update.id)

    def answered(self, device_id: str, message: dict[str, Any]) -> None:
        """The device's ``updated`` answer (module rules ``answers`` and ``refusals``)."""
        number, outcome = int(message["id"]), str(message["outcome"])
        offered = self._offered.get(device_id, {})
        policy = offered.pop(number, None)
        runs = policy if policy_number(policy) == message["policy"] else None
        self.book.answered(device_id, number, runs)
        note = safe_text(message["note"], wire.MAX_NOTE)
        now = self._clock()
        step = self._alerts.observe(
            Observation(
                device_id,
                POLICY_UPDATE_CHECK,
                "failing" if outcome == "refused" else "ok",
                "warning",
                now,
                1,
                False,
                now,
            )
        )
        noted = outcome == "refused" and self._alerts.note(device_id, POLICY_UPDATE_CHECK, note)
        if noted or step.action is not Action.NONE:
            self._owed()
        logger.info(
            "update answered device=%s update=%d outcome=%s policy=%d",
            device_id,
            number,
            outcome,
            message["policy"],
        )
        if self._audit is not None:
            data = {"update": number, "outcome": outcome, "policy": message["policy"], "note": note}
            self._audit(NewEvent(EventType.DEVICE_UPDATE, f"device-{device_id}", data))

    async def _poll(self, seconds: float) -> None:
        """Rule ``when``: offer new publications to the devices connected here."""
        while True:
            await asyncio.sleep(seconds)
            try:
                newest = self.book.newest()
                if newest <= self._newest:
                    continue
                tokens = self.book.tokens_since(self._newest)
                self._newest = newest
                self._published |= tokens
                for device_id, token_id in list(self.connected.items()):
                    if token_id in tokens:
                        await self.offer(device_id)
            except Exception:  # the database away: the next pass tries again
                logger.exception("looking for published updates failed")
