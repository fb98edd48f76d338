"""The durable outbox: records help-desk events and delivers them until acknowledged.

Recording (synchronous, called by the server and the API right after a session
changes): each event goes into the audit log and, in the same transaction, into
the ``outbox`` table once per connector that wants it (:meth:`RelayStore.record_event`).
At start-up :meth:`Outbox.reconcile` records any event a crash cut off between a
session's state change and its event, so none is lost.

Delivering (one asyncio task per connector): take the due rows, lease one (so a
second relay process sharing the database does not send it too), send it from a
worker thread, then mark it delivered — only on the help desk's 2xx — or schedule the
next attempt after :func:`relay.events.retry_delay` (exponential, capped, jittered).
Nothing is ever dropped: a help desk that refuses an event gets it again at the cap's
pace until it accepts it. A restart makes every pending row due at once.

Time comes from ``clock`` (wall seconds; tests pass a fake one) and randomness from
``rand``; ``poll_interval`` is how often (real time) the tasks look for due rows when
nothing woke them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .alert_delivery import DEFAULT_WORKERS as ALERT_WORKERS
from .connectors import Connector, DeliveryError
from .events import (
    EventType,
    NewEvent,
    request_view,
    retry_delay,
    session_view,
    summary_digest,
)
from .help_records import HelpRequest
from .records import SessionRecord, StoredSummary
from .store import RelayStore

logger = logging.getLogger("relay.outbox")


@dataclass(frozen=True)
class DeliverySettings:
    """How deliveries are paced. Seconds."""

    backoff_base: float = 2.0
    backoff_cap: float = 900.0
    timeout: float = 10.0
    poll_interval: float = 1.0
    batch: int = 20
    #: Device alerts' help-desk calls in flight at once (relay.alert_delivery); session
    #: events go one at a time per connector.
    alert_workers: int = ALERT_WORKERS

    @property
    def lease(self) -> float:
        """How long a row stays reserved for one attempt (longer than any attempt lasts)."""
        return self.timeout * 3 + 5.0


class Outbox:
    """Records events for the relay and delivers them to its connectors."""

    def __init__(
        self,
        store: RelayStore,
        connectors: Sequence[Connector],
        clock: Callable[[], float],
        base_url: Callable[[], str],
        settings: DeliverySettings | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._connectors = list(connectors)
        self._clock = clock
        self._base_url = base_url
        self.settings = settings or DeliverySettings()
        self._rand = rand
        self._wakes = {c.name: asyncio.Event() for c in self._connectors}
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------
    # Recording
    # ------------------------------------------------------------------

    def session_created(self, record: SessionRecord) -> None:
        self._record(EventType.SESSION_CREATED, record)

    def session_paired(self, session_id: str) -> None:
        record = self._store.get_session(session_id)
        if record is not None:
            self._record(EventType.SESSION_PAIRED, record)

    def session_ended(self, session_id: str) -> None:
        record = self._store.get_session(session_id)
        if record is not None and record.state.finished:
            self._record(EventType.SESSION_ENDED, record)

    def request_event(self, event_type: str, request: HelpRequest, data: dict[str, object]) -> None:
        """Record an event of a help request (its id stands in the session's place, so
        a ticket sees the request's events in order)."""
        view = request_view(request)
        event = NewEvent(EventType(event_type), request.id, {"request": view, **data})
        wanting = [c.name for c in self._connectors if c.wants(event.type, {"request": view})]
        self._store.record_event(event, self._clock(), wanting)
        self.wake()

    def store_summary(self, record: SessionRecord, summary_json: str) -> tuple[StoredSummary, bool]:
        """Keep a session's first summary and queue ``session.summary`` with it."""
        session = session_view(record, self._base_url())
        event = NewEvent(
            EventType.SESSION_SUMMARY,
            record.id,
            {"session": session, **summary_digest(summary_json)},
            {"summary": json.loads(summary_json)},
        )
        stored, created = self._store.store_summary(
            record.id, summary_json, self._clock(), event, self._wanting(event.type, session)
        )
        if created:
            logger.info("summary stored session=%s", record.id)
            self.wake()
        return stored, created

    def reconcile(
        self,
        event_types: Sequence[EventType] = (
            EventType.SESSION_CREATED,
            EventType.SESSION_PAIRED,
            EventType.SESSION_ENDED,
        ),
    ) -> int:
        """Record every missing session event of these types; return how many.

        At start-up this recovers events a crash cut off; after codes expire (the store
        expires them in bulk) it records their ``session.ended``.
        """
        recorded = 0
        for event_type in event_types:
            for record in self._store.sessions_missing_event(event_type):
                recorded += self._record(event_type, record)
        if recorded:
            logger.info("recorded %d session events missing after a restart", recorded)
        return recorded

    def _record(self, event_type: EventType, record: SessionRecord) -> int:
        session = session_view(record, self._base_url())
        event = NewEvent(event_type, record.id, {"session": session})
        entry = self._store.record_event(event, self._clock(), self._wanting(event_type, session))
        if entry is None:
            return 0
        logger.info("event recorded type=%s session=%s seq=%d", event_type, record.id, entry.seq)
        self.wake()
        return 1

    def _wanting(self, event_type: str, session: dict[str, object]) -> list[str]:
        return [c.name for c in self._connectors if c.wants(event_type, session)]

    # ------------------------------------------------------------------
    # Delivering
    # ------------------------------------------------------------------

    def start(self) -> None:
        """Make pending deliveries due now and start one delivery task per connector."""
        pending = self._store.retry_deliveries_now(self._clock())
        if pending:
            logger.info("retrying %d pending deliveries now", pending)
        for connector in self._connectors:
            logger.info("delivering help-desk events to %s", connector.describe())
            self._tasks.append(
                asyncio.create_task(self._run(connector), name=f"outbox-{connector.name}")
            )

    async def close(self) -> None:
        """Stop delivering. A row being sent stays leased and is retried later."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll."""
        for event in self._wakes.values():
            event.set()

    async def _run(self, connector: Connector) -> None:
        wake = self._wakes[connector.name]
        while True:
            wake.clear()  # before the pass, so an event recorded during it is not missed
            try:
                sent = await self.deliver_due(connector)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep delivering whatever one pass met (a locked database...)
                logger.exception("delivery pass failed connector=%s", connector.name)
                sent = 0
            if sent:
                continue  # more may be due (the next event of a session waited for this one)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval):
                    await wake.wait()

    async def deliver_due(self, connector: Connector) -> int:
        """One pass: try every due row of ``connector`` once; return how many were acknowledged."""
        acknowledged = 0
        settings = self.settings
        for delivery in self._store.due_deliveries(connector.name, self._clock(), settings.batch):
            attempt = self._store.begin_delivery(delivery.id, self._clock(), settings.lease)
            if attempt is None:
                continue  # another relay process took it
            document = json.loads(delivery.document)
            try:
                how = await asyncio.to_thread(connector.deliver, document, attempt)
            except DeliveryError as exc:
                self._failed(delivery.id, delivery.event_id, connector, attempt, str(exc))
                continue
            except Exception as exc:  # a connector bug must not lose the event either
                logger.exception("connector %s failed unexpectedly", connector.name)
                self._failed(delivery.id, delivery.event_id, connector, attempt, repr(exc))
                continue
            acknowledgement = NewEvent(
                EventType.DELIVERY_ACKNOWLEDGED,
                delivery.session_id,
                {
                    "event_id": delivery.event_id,
                    "event_type": delivery.event_type,
                    "connector": connector.name,
                    "attempt": attempt,
                    "acknowledged": how,
                },
            )
            self._store.finish_delivery(delivery.id, self._clock(), acknowledgement)
            acknowledged += 1
            logger.info(
                "delivered event=%s type=%s connector=%s attempt=%d: %s",
                delivery.event_id,
                delivery.event_type,
                connector.name,
                attempt,
                how,
            )
        return acknowledged

    def _failed(
        self, delivery_id: int, event_id: str, connector: Connector, attempt: int, error: str
    ) -> None:
        settings = self.settings
        delay = retry_delay(attempt, settings.backoff_base, settings.backoff_cap, self._rand)
        self._store.fail_delivery(delivery_id, self._clock() + delay, error)
        logger.warning(
            "delivery failed event=%s connector=%s attempt=%d, retrying in %.1f s: %s",
            event_id,
            connector.name,
            attempt,
            delay,
            error,
        )
