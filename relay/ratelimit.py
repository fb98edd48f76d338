"""Sliding-window rate limiting with time as an input (no clock inside).

The relay throttles nameplate claims per client IP so that nobody can scan the
nameplate space; the caller passes ``now`` from its (injectable) clock.
"""

from __future__ import annotations

import math
from collections import deque


class SlidingWindowLimiter:
    """Allow at most ``limit`` events per key in any ``window`` seconds.

    Refused attempts are not recorded, so a client that waits out the window gets
    in again however often it was refused. Memory is one timestamp per allowed
    event in the last window; :meth:`prune` forgets keys that went quiet.
    """

    def __init__(self, limit: int, window: float = 60.0) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be at least 1 and window positive")
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float) -> bool:
        """Record one event for ``key`` at ``now`` and return True, or return False if over."""
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True

    def retry_after(self, key: str, now: float) -> int:
        """Whole seconds until ``key`` may have one more event (at least 1)."""
        events = self._events.get(key)
        if not events or len(events) < self.limit:
            return 1
        return max(1, math.ceil(events[0] + self.window - now))

    def prune(self, now: float) -> None:
        """Forget keys with no event in the last window."""
        quiet = [
            key
            for key, events in self._events.items()
            if not events or events[-1] <= now - self.window
        ]
        for key in quiet:
            del self._events[key]

    def __len__(self) -> int:
        """Number of keys currently tracked."""
        return len(self._events)
