"""Delivering the alert book's owed ticket actions, several alerts at once.

One help-desk call takes most of a second on a real Request Tracker (a ticket's
creation ~0.45 s, a search ~0.35 s on a quiet machine, docs/PERFORMANCE.md), so alerts
delivered one at a time queue behind each other: 100 alerts in a minute waited up to
two minutes. Here a small pool of threads makes the calls, and one thread, the owner,
keeps the book.

Rules (everything about order and durability lives here):

1. The actions of one alert go one at a time, in the order they were owed (open, then
   comments and notes, then resolve): at most one is in flight per alert, and a failed
   one holds back that alert's later ones until it is retried.
2. Actions of different alerts go at once, up to ``workers`` calls in flight, the alert
   whose next action was owed first going first.
3. Only the owner thread (the one running :meth:`AlertDelivery.deliver` or
   :meth:`AlertDelivery.run`) touches the book: its connection (SQLite or PostgreSQL,
   :mod:`relay.device_sql`) is never shared between threads, and a write per call (a
   few milliseconds) is small beside the call. Workers only call
   the help desk and hand back their outcome through a queue.
4. An attempt is counted, and committed, before its call starts
   (:meth:`AlertBook.begin_attempt`). An action whose earlier attempt may have reached
   the help desk (its answer lost, or the relay stopped mid-call) is therefore known
   as such after any crash, and looks for what that attempt made before making it again
   (:class:`relay.alert_book.RequestTrackerAlerts`); a first attempt, which cannot have
   left anything behind, skips that search.
5. An action is marked delivered only after the help desk acknowledged it: a relay that
   stops in between delivers it again, harmlessly (rule 4). Nothing owed is lost.
"""

from __future__ import annotations

import heapq
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from .alert_book import AlertAction, AlertBook, Ticketing
from .alerts import Action
from .errors import DeliveryError

logger = logging.getLogger("relay.alert_delivery")

#: Help-desk calls in flight at once. Request Tracker's own server (rt-server, Starlet)
#: runs 10 worker processes by default; measured against it in bench/devices.py.
DEFAULT_WORKERS = 4
#: Seconds before a failed alert is tried again (the relay: a device heartbeat).
RETRY_AFTER = 30.0

_POKE = object()  # a wake-up in the owner's queue: new actions may be owed


def deliver(book: AlertBook, ticketing: Ticketing, workers: int = DEFAULT_WORKERS) -> int:
    """Deliver every action ``book`` owes once, the actions of one alert in order and up
    to ``workers`` alerts at once; how many were delivered. A failed action is kept
    (with its error) and holds back its alert's later actions until a later pass."""
    return AlertDelivery(ticketing, workers).deliver(book)


def call_help_desk(ticketing: Ticketing, action: AlertAction, ticket: str | None) -> str:
    """One action's call (in a worker thread); the alert's ticket. DeliveryError if the
    help desk did not take it."""
    if action.kind is Action.OPEN:
        return ticketing.open_ticket(action)
    if ticket is None:  # its OPEN goes first (rule 1); only a damaged book gets here
        raise DeliveryError(f"alert {action.alert_id} has no ticket yet")
    if action.kind in (Action.COMMENT, Action.NOTE):
        ticketing.comment(ticket, action)
    else:
        ticketing.resolve(ticket, action)
    return ticket


class AlertDelivery:
    """Delivers an :class:`AlertBook`'s owed actions to ``ticketing`` (module doc)."""

    def __init__(
        self,
        ticketing: Ticketing,
        workers: int = DEFAULT_WORKERS,
        *,
        retry_after: float = RETRY_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if workers < 1:
            raise ValueError("An alert delivery needs at least one worker.")
        self.ticketing = ticketing
        self.workers = workers
        self.retry_after = retry_after
        self._clock = clock
        self._outcomes: queue.SimpleQueue[object] = queue.SimpleQueue()
        #: Most calls seen in flight at once (for tests and benchmarks).
        self.most_in_flight = 0

    # -- public methods ----------------------------------------------------------------

    def poke(self) -> None:
        """Say that new actions may be owed (from any thread): a running delivery reads
        them at once instead of at its next idle check."""
        self._outcomes.put(_POKE)

    def deliver(self, book: AlertBook) -> int:
        """One pass: deliver what is owed, and what becomes owed meanwhile, until nothing
        can go; a failed alert waits for the next pass. How many actions were delivered."""
        return _Pass(self, book, retry_after=math.inf).until(threading.Event(), idle=0.0)

    def run(self, book: AlertBook, stop: threading.Event, idle: float = RETRY_AFTER) -> None:
        """Deliver until ``stop`` is set (then :meth:`poke`), failed alerts again after
        :attr:`retry_after` s, new actions when poked or every ``idle`` s. Calls still
        in flight when it stops are left to end on their own: their actions stay owed
        and counted as tried (rule 4)."""
        _Pass(self, book, retry_after=self.retry_after).until(stop, idle=idle)


class _Pass:
    """The owner's side of one :meth:`AlertDelivery.deliver` or :meth:`AlertDelivery.run`."""

    def __init__(self, delivery: AlertDelivery, book: AlertBook, retry_after: float) -> None:
        self.delivery = delivery
        self.book = book
        self.retry_after = retry_after
        self.delivered = 0
        #: Owed actions read and not yet started, per alert, in order.
        self.chains: dict[str, deque[AlertAction]] = {}
        #: (id of the alert's next action, alert): alerts that may start one, oldest first.
        self.ready: list[tuple[int, str]] = []
        self.in_flight: dict[Future[str], AlertAction] = {}
        self.busy: set[str] = set()
        #: Alerts held back after a failure, until (clock) when.
        self.held: dict[str, float] = {}
        self.seen = 0  # the newest action id read

    def until(self, stop: threading.Event, idle: float) -> int:
        delivery = self.delivery
        pool = ThreadPoolExecutor(delivery.workers, thread_name_prefix="alert-delivery")
        try:
            while not stop.is_set():
                self._release_held()
                self._read_new()
                self._start(pool)
                if not self.in_flight and idle <= 0:
                    return self.delivered
                try:
                    item = delivery._outcomes.get(timeout=self._wait(idle))
                except queue.Empty:
                    continue
                if isinstance(item, Future):
                    self._finish(item)
            return self.delivered
        finally:
            pool.shutdown(wait=not self.in_flight, cancel_futures=True)

    # -- the owner's steps -----------------------------------------------------------------

    def _read_new(self) -> None:
        for action in self.book.pending(after=self.seen):
            self.seen = max(self.seen, action.id)
            self._owe(action)

    def _owe(self, action: AlertAction) -> None:
        if action.alert_id in self.held:
            return  # read again when released
        chain = self.chains.setdefault(action.alert_id, deque())
        chain.append(action)
        if len(chain) == 1 and action.alert_id not in self.busy:
            heapq.heappush(self.ready, (action.id, action.alert_id))

    def _start(self, pool: ThreadPoolExecutor) -> None:
        delivery = self.delivery
        while self.ready and len(self.in_flight) < delivery.workers:
            _, alert_id = heapq.heappop(self.ready)
            chain = self.chains.get(alert_id)
            if not chain or alert_id in self.busy:
                continue
            action = self.book.begin_attempt(chain.popleft())  # rule 4: counted first
            if not chain:
                del self.chains[alert_id]
            ticket = None if action.kind is Action.OPEN else self.book.ticket(alert_id)
            future = pool.submit(call_help_desk, delivery.ticketing, action, ticket)
            self.in_flight[future] = action
            self.busy.add(alert_id)
            delivery.most_in_flight = max(delivery.most_in_flight, len(self.in_flight))
            future.add_done_callback(delivery._outcomes.put)

    def _finish(self, future: Future[str]) -> None:
        action = self.in_flight.pop(future, None)
        if action is None:  # a call left over from an earlier pass
            return
        self.busy.discard(action.alert_id)
        try:
            ticket = future.result()
        except DeliveryError as exc:
            self._hold(action, str(exc))
            return
        except Exception as exc:  # a bug in a help-desk class: the action stays owed
            logger.exception("alert delivery call failed alert=%s", action.alert_id)
            self._hold(action, repr(exc))
            return
        self.book.delivered(action, ticket)
        self.delivered += 1
        chain = self.chains.get(action.alert_id)
        if chain:
            heapq.heappush(self.ready, (chain[0].id, action.alert_id))

    def _hold(self, action: AlertAction, error: str) -> None:
        logger.info(
            "alert action not delivered alert=%s kind=%s attempt=%d: %s",
            action.alert_id,
            action.kind,
            action.attempts + 1,
            error,
        )
        self.book.failed(action, error)
        self.chains.pop(action.alert_id, None)  # rule 1: its later actions wait too
        self.held[action.alert_id] = self.delivery._clock() + self.retry_after

    def _release_held(self) -> None:
        now = self.delivery._clock()
        for alert_id in [a for a, until in self.held.items() if until <= now]:
            del self.held[alert_id]
            for action in self.book.pending(alert_id=alert_id):
                if action.id <= self.seen:  # newer ones come with _read_new
                    self._owe(action)

    def _wait(self, idle: float) -> float | None:
        """How long the owner may sleep: until a call ends, a poke, a held alert's
        retry or the idle check."""
        if idle <= 0:
            return None  # a pass waits only for its calls
        waits = [idle] + [until - self.delivery._clock() for until in self.held.values()]
        return max(0.0, min(waits))
