"""Who is online, kept in memory and written down lazily; across cluster nodes.

A heartbeat from each of 10,000 devices every 30 s is 333 a second: writing each to
the database on the event loop would make presence cost more than everything else the
relay does. So (rules):

1. A heartbeat, a connection and a disconnection change only this process's memory
   (:meth:`PresenceBook.heard`, :meth:`PresenceBook.arrived`, :meth:`PresenceBook.left`):
   a dict write, no I/O.
2. Every ``flush_seconds`` one task writes what changed since the last pass — the
   latest ``last_seen`` of each device heard from, at most once per device per pass,
   and the online flag of those that came or went — in one transaction, in a worker
   thread with its own connection (:meth:`PresenceBook.flush`; the relay's SQLite
   file, or the PostgreSQL database of a cluster: :mod:`relay.device_sql`). The same pass
   writes the sealed details that arrived (only the latest per device and check).
   A crash loses at most one pass of ``last_seen`` times, never an enrolment or an
   alert (those are written at once, elsewhere); a device sends its latest results
   again when it reconnects.
3. In a cluster (:class:`relay.cluster.ClusterNode`) the same pass publishes this
   node's online devices to Redis under the node's own key, with a lifetime of a few
   passes so a lost node's devices drop out by themselves, and reads the other live
   nodes' keys. ``online`` answers for the whole cluster, up to one pass late.
4. When a relay that is not part of a cluster starts, every device the database still
   marks online (a crash, a kill) is marked offline: only a live connection makes a
   device online. A cluster node does not (the other nodes' devices are online);
   there a lost node's devices go offline in Redis (rule 3), and
   ``puente-relay devices`` counts a device online only if it was heard from within
   three heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .device_sql import DeviceConnection, DeviceDatabase

if TYPE_CHECKING:
    from .cluster import ClusterNode

logger = logging.getLogger("relay.presence")

#: Seconds between two passes writing presence down (and publishing it to the cluster).
FLUSH_SECONDS = 5.0


@dataclass(frozen=True)
class SealedDetails:
    """A check's latest details as the relay keeps them: sealed, unreadable here."""

    device_id: str
    check: str
    at: int
    status: str
    sealed: str

    def as_dict(self) -> dict[str, object]:
        return {"check": self.check, "at": self.at, "status": self.status, "sealed": self.sealed}


class PresenceBook:
    """This node's devices in memory, written to ``database`` every ``flush_seconds``."""

    def __init__(
        self,
        database: Path | DeviceDatabase,
        clock: Callable[[], float],
        cluster: ClusterNode | None = None,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self._database = DeviceDatabase.of(database)
        self._clock = clock
        self._cluster = cluster
        self.flush_seconds = flush_seconds
        #: device id -> when last heard from (devices connected to this node).
        self._here: dict[str, float] = {}
        #: device id -> (last seen, online) owed to the database.
        self._owed: dict[str, tuple[float, bool]] = {}
        self._details: dict[tuple[str, str], SealedDetails] = {}
        self._forgotten: set[str] = set()
        #: device id -> last seen, on the other nodes (as of the last pass).
        self._elsewhere: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self.rows_written = 0

    # -- the event loop's side: memory only -------------------------------------------

    def arrived(self, device_id: str) -> None:
        now = self._clock()
        self._here[device_id] = now
        self._owed[device_id] = (now, True)
        self._forgotten.discard(device_id)

    def heard(self, device_id: str) -> None:
        now = self._clock()
        self._here[device_id] = now
        self._owed[device_id] = (now, True)

    def left(self, device_id: str) -> None:
        if self._here.pop(device_id, None) is not None:
            self._owed[device_id] = (self._clock(), False)

    def forgotten(self, device_id: str) -> None:
        """An unenrolled device: nothing more is written for it."""
        self._here.pop(device_id, None)
        self._owed.pop(device_id, None)
        self._forgotten.add(device_id)
        for key in [k for k in self._details if k[0] == device_id]:
            del self._details[key]

    def sealed(self, device_id: str, check: str, at: int, status: str, sealed: str) -> None:
        """Keep a result's sealed details (the latest per device and check)."""
        self._details[(device_id, check)] = SealedDetails(device_id, check, at, status, sealed)

    def online(self, device_id: str) -> bool:
        return device_id in self._here or device_id in self._elsewhere

    def last_seen(self, device_id: str) -> float | None:
        return self._here.get(device_id, self._elsewhere.get(device_id))

    @property
    def connected_here(self) -> int:
        return len(self._here)

    def details_owed(self, device_id: str) -> list[SealedDetails]:
        """Sealed details not yet written down (the API shows them with the written)."""
        return [d for (owner, _), d in self._details.items() if owner == device_id]

    # -- life -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="device-presence")

    async def close(self) -> None:
        """Stop the passes and write (and unpublish) what is owed, once more."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for device_id in list(self._here):
            self.left(device_id)
        with contextlib.suppress(Exception):
            await self.flush()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                await self._cluster.unpublish_devices()

    async def _loop(self) -> None:
        if self._cluster is None:  # rule 4
            await asyncio.to_thread(_mark_all_offline, self._database)
        while True:
            try:
                await self.flush()
            except Exception:  # a locked database or Redis away: the next pass retries
                logger.exception("presence pass failed; retrying in %.0f s", self.flush_seconds)
            await asyncio.sleep(self.flush_seconds)

    async def flush(self) -> None:
        """One pass: write what changed (rule 2), share and learn the cluster's (rule 3)."""
        owed, self._owed = self._owed, {}
        details, self._details = self._details, {}
        forgotten = set(self._forgotten)
        try:
            await asyncio.to_thread(_write, self._database, owed, list(details.values()), forgotten)
        except BaseException:
            # Put it back (newer news wins) so the next pass writes it.
            self._owed = owed | self._owed
            self._details = details | self._details
            raise
        self._forgotten -= forgotten
        self.passes += 1
        self.rows_written += len(owed) + len(details)
        if self._cluster is not None:
            heard = {device_id: seen for device_id, (seen, online) in owed.items() if online}
            gone = [device_id for device_id, (_, online) in owed.items() if not online]
            lifetime = max(3 * self.flush_seconds, 10.0)
            await self._cluster.publish_devices(heard, [*gone, *forgotten], lifetime)
            elsewhere = await self._cluster.devices_elsewhere()
            self._elsewhere = {d: seen for d, seen in elsewhere.items() if d not in self._here}


def _mark_all_offline(database: DeviceDatabase) -> None:
    db = database.connect(thread_safe=True)
    try:
        db.execute("UPDATE enrolled_devices SET online = 0 WHERE online = 1")
    finally:
        db.close()


def _write(
    database: DeviceDatabase,
    owed: dict[str, tuple[float, bool]],
    details: list[SealedDetails],
    forgotten: set[str],
) -> None:
    if not owed and not details and not forgotten:
        return
    db = database.connect(thread_safe=True)
    try:
        with db.transaction():
            db.executemany(
                "UPDATE enrolled_devices SET last_seen = ?, online = ? WHERE device_id = ?",
                [(seen, int(online), device_id) for device_id, (seen, online) in owed.items()],
            )
            db.executemany(
                "INSERT INTO device_details (device_id, check_id, at, status, sealed) "
                "SELECT ?, ?, ?, ?, ? WHERE EXISTS "
                "(SELECT 1 FROM enrolled_devices WHERE device_id = ?) "
                "ON CONFLICT (device_id, check_id) DO UPDATE SET at = excluded.at, "
                "status = excluded.status, sealed = excluded.sealed "
                "WHERE excluded.at >= device_details.at",
                [(d.device_id, d.check, d.at, d.status, d.sealed, d.device_id) for d in details],
            )
            db.executemany(
                "DELETE FROM device_details WHERE device_id = ?",
                [(device_id,) for device_id in forgotten],
            )
    finally:
        db.close()


def stored_details(db: DeviceConnection, device_id: str) -> list[SealedDetails]:
    """The sealed details written down for ``device_id`` (newest run per check)."""
    rows = db.execute(
        "SELECT device_id, check_id, at, status, sealed FROM device_details "
        "WHERE device_id = ? ORDER BY check_id",
        (device_id,),
    ).fetchall()
    return [SealedDetails(*row) for row in rows]


def open_tickets(db: DeviceConnection, device_id: str) -> dict[str, str]:
    """Check -> ticket of the device's open alerts that have one (for the technician's
    side, which posts opened details there when the policy allows)."""
    rows = db.execute(
        "SELECT p.check_id, t.ticket FROM alert_pairs p JOIN alert_tickets t "
        "USING (alert_id) WHERE p.device = ? AND p.state = 'open'",
        (device_id,),
    ).fetchall()
    return {check: ticket for check, ticket in rows}
