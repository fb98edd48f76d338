"""Frame pacing: how many frames may be in flight, how often, at what quality.

Pure: time is an input (``now`` in seconds), so the rules are tested with a fake
clock.

Rules:

1. At most ``window`` frames are unacknowledged at once (VNC-style update
   requests): a slow link or viewer gets fewer, fresher frames, never a queue.
2. Captures start at least ``1 / max_fps`` apart, counted from the start of one
   capture to the start of the next: the time spent capturing and coding is part
   of the interval, not added to it (else a frame that takes 20 ms to code would
   hold 60 fps down to 27).
3. The round-trip time of each acknowledged frame is measured; the lowest one seen
   is the link's base delay. When frames come back much later than that, frames
   are queueing somewhere: step down one level (lower JPEG quality, then frame
   rate). When round trips stay close to the base for a while, step back up.
4. The viewer may fix the quality or the frame rate; then only the other adapts.
"""

from __future__ import annotations

from dataclasses import dataclass

#: (JPEG quality, frame rate cap) per level; level 0 is the best.
LEVELS: tuple[tuple[int, int], ...] = (
    (85, 60),
    (75, 60),
    (60, 30),
    (45, 20),
    (35, 12),
    (25, 6),
)
#: Round trip above the base by this much means frames are queueing.
QUEUEING_S = 0.15
#: Round trips within this of the base for STEADY_S mean the link has room.
CALM_S = 0.04
STEADY_S = 2.0
#: Do not change level more often than this.
HOLD_S = 0.5


@dataclass
class InFlight:
    sent_at: float
    size: int


class FramePacer:
    def __init__(self, *, window: int = 3, max_fps: int = 0, quality: int = 0) -> None:
        self.window = window
        self.fixed_fps = max_fps
        self.fixed_quality = quality
        self.level = 1
        self.in_flight: dict[int, InFlight] = {}
        self.srtt: float | None = None
        self.base_rtt: float | None = None
        self.frames_sent = 0
        self.bytes_sent = 0
        self._next_seq = 1
        self._last_capture = -1e9
        self._last_change = -1e9
        self._calm_since: float | None = None

    # Public methods --------------------------------------------------------------------

    def configure(self, *, max_fps: int | None = None, quality: int | None = None) -> None:
        if max_fps is not None:
            self.fixed_fps = max_fps
        if quality is not None:
            self.fixed_quality = quality

    @property
    def quality(self) -> int:
        return self.fixed_quality or LEVELS[self.level][0]

    @property
    def max_fps(self) -> int:
        level_fps = LEVELS[self.level][1]
        return min(self.fixed_fps, level_fps) if self.fixed_fps else level_fps

    def window_open(self) -> bool:
        """True when another frame may be sent (rule 1)."""
        return len(self.in_flight) < self.window

    def delay(self, now: float, fps: int | None = None) -> float:
        """Seconds to wait before the next capture (rule 2, or at ``fps``); 0 when due."""
        return max(0.0, self._last_capture + 1.0 / (fps or self.max_fps) - now)

    def captured(self, now: float) -> None:
        """A capture starts now (whether or not it finds a change): rule 2 counts from here."""
        self._last_capture = now

    def sent(self, size: int, now: float) -> int:
        """Record a frame just sent; return its sequence number."""
        seq = self._next_seq
        self._next_seq += 1
        self.in_flight[seq] = InFlight(now, size)
        self.frames_sent += 1
        self.bytes_sent += size
        return seq

    def peek_seq(self) -> int:
        return self._next_seq

    def acked(self, seq: int, now: float) -> float | None:
        """Record the viewer's acknowledgement of ``seq``; return its round trip."""
        entry = self.in_flight.pop(seq, None)
        if entry is None:
            return None
        # Frames before this one are implied acknowledged (acks arrive in order).
        for older in [s for s in self.in_flight if s < seq]:
            del self.in_flight[older]
        rtt = max(0.0, now - entry.sent_at)
        self.srtt = rtt if self.srtt is None else 0.8 * self.srtt + 0.2 * rtt
        self.base_rtt = rtt if self.base_rtt is None else min(self.base_rtt, rtt)
        self._adapt(now)
        return rtt

    # Private methods -------------------------------------------------------------------

    def _adapt(self, now: float) -> None:
        assert self.srtt is not None and self.base_rtt is not None
        if now - self._last_change < HOLD_S:
            return
        queueing = self.srtt - self.base_rtt
        if queueing > QUEUEING_S:
            self._calm_since = None
            if self.level < len(LEVELS) - 1:
                self.level += 1
                self._last_change = now
            return
        if queueing < CALM_S:
            if self._calm_since is None:
                self._calm_since = now
            elif now - self._calm_since >= STEADY_S and self.level > 0:
                self.level -= 1
                self._last_change = now
                self._calm_since = now
        else:
            self._calm_since = None
